"""`pixloom upscale` on files: R1 validation, R3 output safety, G2 metadata, 16-bit files."""

import numpy as np
import pytest
from PIL import Image

from pixloom.cli.main import main
from pixloom.errors import InvalidValue
from pixloom.io.images import load_image_array, read_png_metadata, save_png
from pixloom.pipelines.upscale import UpscaleRequest
from pixloom.pipelines.upscale_files import encode_png16, upscale_files

RNG = np.random.default_rng(0)


def _rgb(path, size=(6, 8)):
    Image.fromarray(RNG.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize(
    "fields,field",
    [
        ({"scale": 5}, "scale"),
        ({"scale": 1}, "scale"),
        ({"tile": 8}, "tile"),
        ({"tile": 32, "tile_overlap": 16}, "tile_overlap"),
        ({"tile_overlap": -1}, "tile_overlap"),
        ({"outscale": 0}, "outscale"),
        ({"outscale": 100.0}, "outscale"),
        ({"input": "  "}, "input"),
    ],
)
def test_request_validation_names_the_field(fields, field):
    with pytest.raises(InvalidValue) as error:
        UpscaleRequest(**{"input": "x.png", **fields})
    assert error.value.field == field


def test_cli_refuses_bad_scale_with_exit_2(tmp_path, capsys):
    source = _rgb(tmp_path / "a.png")
    assert main(["upscale", str(source), "--scale", "5", "--out", str(tmp_path / "o")]) == 2
    assert "scale=5" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_writes_same_names_into_out(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    _rgb(folder / "one.png")
    _rgb(folder / "two.jpg")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    code = main(["upscale", str(folder), "--scale", "2", "--model", "bicubic", "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["one.png", "two.png"]
    assert Image.open(out / "one.png").size == (16, 12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]  # nothing else written


def test_existing_output_is_not_overwritten_unless_asked(tmp_path):
    source = _rgb(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"keep me")
    request = dict(input=str(source), scale=2, model="bicubic", out=str(out))
    with pytest.raises(InvalidValue, match="overwrite"):
        upscale_files(UpscaleRequest(**request))
    assert (out / "a.png").read_bytes() == b"keep me"
    upscale_files(UpscaleRequest(**request, overwrite=True))
    assert Image.open(out / "a.png").size == (16, 12)


def test_clashing_names_are_refused(tmp_path):
    _rgb(tmp_path / "a.png")
    _rgb(tmp_path / "a.jpg")
    with pytest.raises(InvalidValue, match="unique name"):
        upscale_files(
            UpscaleRequest(input=str(tmp_path), scale=2, model="bicubic", out=str(tmp_path / "o"))
        )


def test_metadata_chain_grows_with_each_step(tmp_path):
    source = tmp_path / "gen.png"
    image = Image.fromarray(RNG.integers(0, 256, (5, 5, 3), dtype=np.uint8))
    save_png(image, source, metadata={"prompt": "a red circle", "chain": [{"step": "generate"}]})
    upscale_files(
        UpscaleRequest(input=str(source), scale=2, model="bicubic", out=str(tmp_path / "x2"))
    )
    first = read_png_metadata(tmp_path / "x2" / "gen.png")
    assert first["prompt"] == "a red circle"
    assert [step["step"] for step in first["chain"]] == ["generate", "upscale"]
    assert first["chain"][1]["model"] == "bicubic" and first["chain"][1]["request"]["scale"] == 2
    upscale_files(
        UpscaleRequest(
            input=str(tmp_path / "x2" / "gen.png"),
            scale=3,
            model="lanczos",
            out=str(tmp_path / "x6"),
        )
    )
    second = read_png_metadata(tmp_path / "x6" / "gen.png")
    assert [step["step"] for step in second["chain"]] == ["generate", "upscale", "upscale"]


def test_sixteen_bit_rgb_alpha_and_gray_files_stay_sixteen_bit(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rgba = np.linspace(0, 1, 8 * 8 * 4, dtype=np.float32).reshape(8, 8, 4)
    (folder / "rgba16.png").write_bytes(encode_png16(rgba, {"chain": []}))
    gray = (np.linspace(0, 65535, 64).reshape(8, 8)).astype(np.uint16)
    Image.fromarray(gray).save(folder / "gray16.png")
    out = tmp_path / "out"
    upscale_files(UpscaleRequest(input=str(folder), scale=2, model="bicubic", out=str(out)))
    for name, colour_type in [("rgba16.png", 6), ("gray16.png", 0)]:
        header = (out / name).read_bytes()[:26]
        assert header[24] == 16 and header[25] == colour_type
    array = load_image_array(out / "rgba16.png", keep_alpha=True)
    assert array.shape == (16, 16, 4) and len(np.unique(np.round(array * 65535))) > 256
    assert read_png_metadata(out / "rgba16.png")["chain"][0]["step"] == "upscale"


def test_corrupt_file_in_folder_is_skipped_and_reported(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _rgb(folder / "good.png")
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    summary = upscale_files(
        UpscaleRequest(input=str(folder), scale=2, model="bicubic", out=str(tmp_path / "o"))
    )
    assert [p.name for p in summary.written] == ["good.png"]
    assert summary.skipped and "bad.png" in summary.skipped[0][0]
