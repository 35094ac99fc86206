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
