"""`pixloom data list` and `pixloom data show` render a captioned grid and print its path."""

from pixloom.cli.main import main
from pixloom.io.images import read_png_metadata


def test_data_list(capsys):
    assert main(["data", "list"]) == 0
    assert "shapes" in capsys.readouterr().out.split()


def test_data_show_writes_grid_and_refuses_overwrite(tmp_path, capsys):
    out = tmp_path / "grid.png"
    args = [
        "data",
        "show",
        "shapes",
        "--out",
        str(out),
        "-n",
        "4",
        "--resolution",
        "16",
        "--seed",
        "3",
    ]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == str(out)
    metadata = read_png_metadata(out)
    assert metadata["dataset"] == "shapes" and len(metadata["indices"]) == 4
    assert main(args) == 2
    assert "overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--split", "test"]) == 0
    assert main(["data", "show", "nothing", "--out", str(tmp_path / "x.png")]) == 2
    assert "dataset='nothing'" in capsys.readouterr().err
