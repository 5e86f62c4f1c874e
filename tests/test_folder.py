"""Tests for `mmlab.data.from_folder`: fixture folders are built in tmp_path at test time.

Independent checks: pixel colours and sine frequencies are encoded from each pair's id, so
alignment after skipping is checked against the id, not against the loader's own output;
resampling is checked against the analytic sine at 16 kHz; stereo against the channel mean.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

import mmlab.data
from mmlab.data import folder as folder_mod
from mmlab.data.folder import FolderError, from_folder

SR = 16_000
EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "examples" / "my_pairs"


# ---- fixture builders ----------------------------------------------------------------------
def colour_of(k: int) -> tuple[int, int, int]:
    return (20 + 30 * k, 200 - 20 * k, (60 * k) % 256)


def freq_of(k: int) -> float:
    return 250.0 + 125.0 * k  # exactly on a 1 Hz FFT bin for 1 s clips


def sine(freq: float, seconds: float, rate: int, phase: float = 0.0) -> np.ndarray:
    n = np.arange(round(seconds * rate))
    return 0.5 * np.sin(2 * np.pi * freq * n / rate + phase)


def write_png(path: Path, colour, size=(12, 9), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


def write_wav(path: Path, x: np.ndarray, rate: int = SR, subtype: str = "FLOAT") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, rate, subtype=subtype)


def write_csv(root: Path, rows: list[dict], header=("id", "image", "audio", "text")) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "pairs.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(header), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def make_folder(root: Path, n: int = 4, seconds: float = 0.25) -> list[dict]:
    """n good pairs: id k has colour_of(k), a sine at freq_of(k) and the caption 'pair k'."""
    rows = []
    for k in range(n):
        write_png(root / "img" / f"p{k}.png", colour_of(k))
        write_wav(root / "snd" / f"p{k}.wav", sine(freq_of(k), seconds, SR))
        rows.append({"id": f"p{k}", "image": f"img/p{k}.png", "audio": f"snd/p{k}.wav", "text": f"pair {k}"})
    write_csv(root, rows)
    return rows


def dominant_freq(x: np.ndarray, rate: int = SR) -> float:
    spec = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spec.argmax()])


def check_aligned(ds) -> None:
    """Every row's image colour, sine frequency and caption match the id it is listed under."""
    for i, pid in enumerate(ds.meta["ids"]):
        k = int(pid[1:])
        want = torch.tensor(colour_of(k), dtype=torch.float32) / 255
        assert torch.allclose(ds.modalities_data["image"][i].mean(dim=(1, 2)), want, atol=1e-6), pid
        n = int(ds.meta["sample"]["audio_length"][i])
        assert abs(dominant_freq(ds.modalities_data["audio"][i, :n].numpy()) - freq_of(k)) <= SR / n, pid
        assert ds.modalities_data["text"][i] == f"pair {k}"


# ---- the happy path ------------------------------------------------------------------------
def test_loads_pairs_in_row_order_with_the_batch_format(tmp_path):
    make_folder(tmp_path, n=4)
    ds = from_folder(tmp_path, image_size=16)
    assert len(ds) == 4 and ds.modalities == ("image", "audio", "text")
    assert ds.meta["ids"] == ["p0", "p1", "p2", "p3"]
    assert ds.meta["sample"]["row"].tolist() == [2, 3, 4, 5]
    check_aligned(ds)
    b = ds.batch(torch.tensor([2, 0]))
    assert b["image"].shape == (2, 3, 16, 16) and b["image"].dtype == torch.float32
    assert b["audio"].shape == (2, 4000) and b["audio"].dtype == torch.float32
    assert b["text"] == ["pair 2", "pair 0"] and b["index"].tolist() == [2, 0]
    assert all(m.all() for m in b["present"].values())
    # same rate, float wav: the waveform is read back exactly
    assert torch.allclose(ds.modalities_data["audio"][1].double(), torch.from_numpy(sine(freq_of(1), 0.25, SR)), atol=1e-7)


def test_shipped_example_folder_loads():
    ds = mmlab.data.from_folder(EXAMPLE)
    assert len(ds) == 6 and ds.modalities == ("image", "audio", "text")
    assert ds.present["audio"].tolist() == [True, True, True, True, False, True]
    assert ds.present["text"].tolist() == [True, True, True, True, True, False]
    assert ds.modalities_data["audio"][4].abs().sum() == 0
    # red_circle's image is mostly red where the shape is: red channel dominates in the centre
    centre = ds.modalities_data["image"][0, :, 14:18, 14:18].mean(dim=(1, 2))
    assert centre[0] > 0.7 and centre[1] < 0.3 and centre[2] < 0.3
    # every clip is speech of 0.2-1 s after resampling to 16 kHz
    lengths = ds.meta["sample"]["audio_length"]
    assert ((lengths[ds.present["audio"]] > 0.2 * SR) & (lengths[ds.present["audio"]] < SR)).all()


def test_images_converted_to_rgb_and_resized(tmp_path):
    write_png(tmp_path / "grey.png", 128, size=(50, 20), mode="L")
    write_png(tmp_path / "rgba.png", (10, 20, 30, 255), size=(7, 7), mode="RGBA")
    pal = Image.new("P", (9, 5))
    pal.putpalette([200, 100, 50] * 256)
    pal.save(tmp_path / "pal.png")
    write_csv(tmp_path, [{"id": "g", "image": "grey.png"}, {"id": "a", "image": "rgba.png"},
                         {"id": "p", "image": "pal.png"}], header=("id", "image"))
    ds = from_folder(tmp_path, image_size=8)
    img = ds.modalities_data["image"]
    assert img.shape == (3, 3, 8, 8) and ds.modalities == ("image",)
    expected = torch.tensor([[128, 128, 128], [10, 20, 30], [200, 100, 50]], dtype=torch.float32) / 255
    assert torch.allclose(img.mean(dim=(2, 3)), expected, atol=1e-6)
    assert torch.allclose(img.amin(dim=(2, 3)), img.amax(dim=(2, 3)))  # solid colours stay solid


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_other_sample_rates_are_resampled_to_16k(tmp_path, rate):
    f, seconds = 440.0, 1.0
    write_wav(tmp_path / "s.wav", sine(f, seconds, rate), rate)
    write_csv(tmp_path, [{"id": "s", "audio": "s.wav"}], header=("id", "audio"))
    ds = from_folder(tmp_path)
    x = ds.modalities_data["audio"][0].double()
    assert abs(int(ds.meta["sample"]["audio_length"][0]) - seconds * SR) <= 1  # duration kept
    assert x.shape == (round(seconds * SR),)
    assert dominant_freq(x.numpy()) == pytest.approx(f, abs=1.0)  # pitch kept
    # and the waveform is the analytic sine sampled at 16 kHz (away from the filter's edges)
    ref = torch.from_numpy(sine(f, seconds, SR))
    mid = slice(800, 15200)
    assert (x[mid] - ref[mid]).abs().max() < 5e-3


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = sine(300.0, 0.2, SR), sine(700.0, 0.2, SR, phase=1.0)
    write_wav(tmp_path / "st.wav", np.stack([left, right], axis=1))
    write_csv(tmp_path, [{"id": "st", "audio": "st.wav"}], header=("id", "audio"))
    x = from_folder(tmp_path).modalities_data["audio"][0].double()
    assert torch.allclose(x, torch.from_numpy((left + right) / 2), atol=1e-7)


def test_audio_seconds_pads_and_crops_and_default_is_capped(tmp_path, monkeypatch):
    write_wav(tmp_path / "a.wav", sine(500.0, 0.10, SR))
    write_wav(tmp_path / "b.wav", sine(500.0, 0.30, SR))
    write_csv(tmp_path, [{"id": "a", "audio": "a.wav"}, {"id": "b", "audio": "b.wav"}], header=("id", "audio"))
    ds = from_folder(tmp_path, audio_seconds=0.2)
    a = ds.modalities_data["audio"]
    assert a.shape == (2, 3200)
    assert a[0, 1600:].abs().sum() == 0 and a[0, :1600].abs().sum() > 0  # zero padding at the end
    assert torch.allclose(a[1].double(), torch.from_numpy(sine(500.0, 0.30, SR)[:3200]), atol=1e-7)  # crop the end
    assert from_folder(tmp_path).modalities_data["audio"].shape == (2, 4800)  # default: the longest
    monkeypatch.setattr(folder_mod, "MAX_AUDIO_SECONDS", 0.25)
    assert from_folder(tmp_path).modalities_data["audio"].shape == (2, 4000)  # ... capped


def test_empty_cells_give_present_false_and_zero_placeholders(tmp_path):
    rows = make_folder(tmp_path, n=3)
    rows[0]["image"] = ""
    rows[1]["audio"] = ""
    rows[2]["text"] = ""
    write_csv(tmp_path, rows)
    ds = from_folder(tmp_path)
    assert ds.present["image"].tolist() == [False, True, True]
    assert ds.present["audio"].tolist() == [True, False, True]
    assert ds.present["text"].tolist() == [True, True, False]
    assert ds.modalities_data["image"][0].abs().sum() == 0
    assert ds.modalities_data["audio"][1].abs().sum() == 0
    assert ds.modalities_data["text"][2] == ""
    assert ds.meta["sample"]["audio_length"][1] == 0


def test_other_text_column_and_quoted_commas(tmp_path):
    write_csv(tmp_path, [{"id": "x", "caption": "red, round and small"}], header=("id", "caption"))
    ds = from_folder(tmp_path, text_column="caption")
    assert ds.modalities == ("text",) and ds.modalities_data["text"] == ["red, round and small"]


# ---- bad files: raise (default) names the file and the problem --------------------------------
def corrupt(root: Path, kind: str) -> tuple[str, str, str]:
    """Make pair p1 bad in one way; return (column, cell, expected words in the message)."""
    if kind == "corrupt_png":
        raw = (root / "img/p1.png").read_bytes()
        # keep the signature and chunk headers, zero the compressed pixels (IDAT data) before IEND
        (root / "img/p1.png").write_bytes(raw[:41] + b"\x00" * (len(raw) - 53) + raw[-12:])
        return "image", "img/p1.png", "corrupt or truncated"
    if kind == "truncated_png":
        noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(noise).save(root / "img/p1.png")
        raw = (root / "img/p1.png").read_bytes()
        (root / "img/p1.png").write_bytes(raw[: len(raw) // 2])  # cut inside the pixel data
        return "image", "img/p1.png", "corrupt or truncated"
    if kind == "png_header_only":
        raw = (root / "img/p1.png").read_bytes()
        (root / "img/p1.png").write_bytes(raw[:30])  # cut inside the IHDR chunk
        return "image", "img/p1.png", "a corrupt file"
    if kind == "not_an_image":
        (root / "img/p1.png").write_bytes(b"hello, I am text pretending to be a picture\n")
        return "image", "img/p1.png", "not an image"
    if kind == "wav_as_image":
        (root / "img/p1.png").write_bytes((root / "snd/p1.wav").read_bytes())
        return "image", "img/p1.png", "not an image"
    if kind == "empty_image":
        (root / "img/p1.png").write_bytes(b"")
        return "image", "img/p1.png", "empty"
    if kind == "missing_image":
        (root / "img/p1.png").unlink()
        return "image", "img/p1.png", "not found"
    if kind == "truncated_wav":
        raw = (root / "snd/p1.wav").read_bytes()
        (root / "snd/p1.wav").write_bytes(raw[: len(raw) // 2])
        return "audio", "snd/p1.wav", "truncated"
    if kind == "header_only_wav":
        raw = (root / "snd/p1.wav").read_bytes()
        (root / "snd/p1.wav").write_bytes(raw[:30])
        return "audio", "snd/p1.wav", "truncated"
    if kind == "png_as_audio":
        (root / "snd/p1.wav").write_bytes((root / "img/p0.png").read_bytes())
        return "audio", "snd/p1.wav", "not a sound file"
    if kind == "empty_wav":
        (root / "snd/p1.wav").write_bytes(b"")
        return "audio", "snd/p1.wav", "empty"
    if kind == "missing_wav":
        (root / "snd/p1.wav").unlink()
        return "audio", "snd/p1.wav", "not found"
    if kind == "directory":
        (root / "img/p1.png").unlink()
        (root / "img/p1.png").mkdir()
        return "image", "img/p1.png", "not a file"
    raise AssertionError(kind)


BAD_KINDS = ["corrupt_png", "truncated_png", "png_header_only", "not_an_image", "wav_as_image", "empty_image", "missing_image",
             "truncated_wav", "header_only_wav", "png_as_audio", "empty_wav", "missing_wav", "directory"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_file_raises_with_path_and_problem(tmp_path, kind):
    make_folder(tmp_path, n=3)
    _, cell, words = corrupt(tmp_path, kind)
    with pytest.raises(FolderError) as info:
        from_folder(tmp_path)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert cell in msg and words in msg and "'p1'" in msg and "line 3" in msg, msg


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_skip_mode_drops_the_pair_and_keeps_the_rest_aligned(tmp_path, kind):
    make_folder(tmp_path, n=4)
    _, cell, words = corrupt(tmp_path, kind)
    with pytest.warns(UserWarning, match=r"skipped 1 of 4 pairs"):
        ds = from_folder(tmp_path, on_error="skip")
    assert ds.meta["ids"] == ["p0", "p2", "p3"]
    assert ds.meta["sample"]["row"].tolist() == [2, 4, 5]
    (sid, spath, reason), = ds.meta["skipped"]
    assert sid == "p1" and spath == cell and words in reason
    check_aligned(ds)


def test_skip_mode_summary_counts_several_and_alignment_survives_batches(tmp_path):
    make_folder(tmp_path, n=6)
    (tmp_path / "img/p1.png").write_bytes(b"junk")
    (tmp_path / "snd/p4.wav").unlink()
    with pytest.warns(UserWarning) as rec:
        ds = from_folder(tmp_path, on_error="skip")
    msg = str(rec[0].message)
    assert "skipped 2 of 6 pairs" in msg and "p1" in msg and "p4" in msg
    assert [s[0] for s in ds.meta["skipped"]] == ["p1", "p4"]
    assert ds.meta["ids"] == ["p0", "p2", "p3", "p5"]
    check_aligned(ds)
    for b in ds.batches(3, generator=torch.Generator().manual_seed(0)):
        for j, i in enumerate(b["index"].tolist()):
            k = int(ds.meta["ids"][i][1:])
            assert b["text"][j] == f"pair {k}"
            assert torch.allclose(b["image"][j, :, 0, 0], torch.tensor(colour_of(k), dtype=torch.float32) / 255)


def test_subset_and_to_keep_ids_aligned(tmp_path):
    """`subset` slices the per-sample ids (meta["ids"] and meta["sample"]["ids"]) with the rows,
    so check_aligned (colour, frequency and caption read back from the data) still holds."""
    make_folder(tmp_path, n=5)
    ds = from_folder(tmp_path, image_size=8)
    assert ds.meta["sample"]["ids"] == ds.meta["ids"] == ["p0", "p1", "p2", "p3", "p4"]
    idx = [3, 0, 4]
    sub = ds.subset(torch.tensor(idx))
    assert sub.meta["ids"] == sub.meta["sample"]["ids"] == [f"p{k}" for k in idx]
    assert sub.meta["sample"]["row"].tolist() == [ds.meta["sample"]["row"][k].item() for k in idx]
    assert sub.meta["skipped"] == ds.meta["skipped"] and sub.meta["root"] == ds.meta["root"]
    check_aligned(sub)
    mask = torch.tensor([False, True, False, True, True])
    check_aligned(ds.subset(mask))
    assert ds.subset(mask).meta["ids"] == ["p1", "p3", "p4"]
    moved = sub.to("cpu")
    assert moved.meta["ids"] == sub.meta["ids"] and moved.meta["ids"] is not sub.meta["ids"]
    check_aligned(moved)
    assert ds.meta["ids"] == ["p0", "p1", "p2", "p3", "p4"]  # the original is untouched


def test_all_pairs_bad_in_skip_mode_raises(tmp_path):
    make_folder(tmp_path, n=2)
    for k in range(2):
        (tmp_path / f"img/p{k}.png").write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FolderError, match="no usable pair"):
            from_folder(tmp_path, on_error="skip")


# ---- the csv and the folder ----------------------------------------------------------------
def test_duplicated_id_names_the_id_and_lines(tmp_path):
    rows = make_folder(tmp_path, n=3)
    rows[2]["id"] = "p0"
    write_csv(tmp_path, rows)
    for mode in ("raise", "skip"):
        with pytest.raises(FolderError, match=r"id 'p0' appears more than once \(lines 2 and 4\)"):
            from_folder(tmp_path, on_error=mode)


def test_missing_id_column(tmp_path):
    write_csv(tmp_path, [{"image": "a.png", "text": "x"}], header=("image", "text"))
    with pytest.raises(FolderError, match="no `id` column"):
        from_folder(tmp_path)


@pytest.mark.parametrize("content, words", [
    (b"", "is empty"),
    (b"id,image,audio,text\n", "no rows"),
    (b"id,text\n,hello\n", "`id` cell is empty"),
    (b"id,text\na,one,two\n", "has 3 cells"),
    (b"id,text,text\na,x,y\n", "more than once"),
    (b"id,label\na,1\n", "no modality column"),
    ("id,text\na,caf\xe9\n".encode("latin-1"), "not UTF-8"),
])
def test_bad_csv(tmp_path, content, words):
    (tmp_path / "pairs.csv").write_bytes(content)
    with pytest.raises(FolderError, match=words):
        from_folder(tmp_path)


def test_csv_with_bom_and_blank_lines(tmp_path):
    (tmp_path / "pairs.csv").write_bytes("\ufeffid,text\n\na,hello\n\n".encode("utf-8"))
    ds = from_folder(tmp_path)
    assert ds.meta["ids"] == ["a"] and ds.modalities_data["text"] == ["hello"]


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink_file", "symlink_dir"])
@pytest.mark.parametrize("mode", ["raise", "skip"])
def test_paths_escaping_the_folder_are_refused(tmp_path, how, mode):
    root, outside = tmp_path / "root", tmp_path / "outside"
    make_folder(root, n=2)
    write_png(outside / "secret.png", (1, 2, 3))
    rows = list(csv.DictReader(open(root / "pairs.csv")))
    if how == "dotdot":
        rows[1]["image"] = "../outside/secret.png"
    elif how == "absolute":
        rows[1]["image"] = str(outside / "secret.png")
    elif how == "symlink_file":
        os.symlink(outside / "secret.png", root / "img" / "link.png")
        rows[1]["image"] = "img/link.png"
    else:
        os.symlink(outside, root / "linkdir")
        rows[1]["image"] = "linkdir/secret.png"
    write_csv(root, rows)
    with pytest.raises(FolderError) as info:
        from_folder(root, on_error=mode)
    msg = str(info.value)
    assert "'p1'" in msg and ("outside the folder" in msg or "absolute" in msg), msg


def test_paths_inside_the_folder_via_dotdot_or_symlink_are_fine(tmp_path):
    make_folder(tmp_path, n=2)
    os.symlink(tmp_path / "img" / "p1.png", tmp_path / "alias.png")
    rows = list(csv.DictReader(open(tmp_path / "pairs.csv")))
    rows[0]["image"] = "snd/../img/p0.png"
    rows[1]["image"] = "alias.png"
    write_csv(tmp_path, rows)
    check_aligned(from_folder(tmp_path))


@pytest.mark.parametrize("kwargs, exc, name", [
    ({"on_error": "ignore"}, ValueError, "on_error"),
    ({"image_size": 0}, ValueError, "image_size"),
    ({"image_size": 32.0}, TypeError, "image_size"),
    ({"sample_rate": -1}, ValueError, "sample_rate"),
    ({"audio_seconds": 0}, ValueError, "audio_seconds"),
    ({"audio_seconds": float("nan")}, ValueError, "audio_seconds"),
    ({"text_column": ""}, TypeError, "text_column"),
])
def test_bad_arguments(tmp_path, kwargs, exc, name):
    make_folder(tmp_path, n=1)
    with pytest.raises(exc, match=f"`{name}`"):
        from_folder(tmp_path, **kwargs)


def test_bad_root(tmp_path):
    with pytest.raises(TypeError, match="`root`"):
        from_folder(3)
    with pytest.raises(FolderError, match="is not a folder"):
        from_folder(tmp_path / "nope")
    make_folder(tmp_path, n=1)
    with pytest.raises(FolderError, match="not the file"):
        from_folder(tmp_path / "pairs.csv")
    (tmp_path / "pairs.csv").unlink()
    with pytest.raises(FolderError, match="has no pairs.csv"):
        from_folder(tmp_path)


# ---- csv details: line numbers, header spelling, the csv itself leaving the folder ----------
def test_line_numbers_after_a_multi_line_quoted_cell(tmp_path):
    make_folder(tmp_path, n=3)
    (tmp_path / "img/p2.png").write_bytes(b"junk")
    (tmp_path / "pairs.csv").write_text(
        "id,image,audio,text\n"
        'p0,img/p0.png,snd/p0.wav,"a caption\nover three\nlines"\n'   # lines 2-4
        "p1,img/p1.png,snd/p1.wav,pair 1\n"                           # line 5
        "p2,img/p2.png,snd/p2.wav,pair 2\n")                          # line 6
    with pytest.raises(FolderError, match=r"line 6 \(id 'p2'\)"):
        from_folder(tmp_path)
    with pytest.warns(UserWarning):
        ds = from_folder(tmp_path, on_error="skip")
    assert ds.meta["sample"]["row"].tolist() == [2, 5]
    assert ds.modalities_data["text"][0] == "a caption\nover three\nlines"
    (tmp_path / "pairs.csv").write_text('id,text\na,"x\ny"\nb,z\nb,w\n')
    with pytest.raises(FolderError, match=r"lines 4 and 5"):
        from_folder(tmp_path)


@pytest.mark.parametrize("mode", ["raise", "skip"])
def test_pairs_csv_that_is_a_symlink_out_of_the_folder_is_refused(tmp_path, mode):
    root, outside = tmp_path / "root", tmp_path / "outside"
    make_folder(outside, n=2)
    root.mkdir()
    os.symlink(outside / "pairs.csv", root / "pairs.csv")
    with pytest.raises(FolderError, match="symlink that points outside the folder"):
        from_folder(root, on_error=mode)
    (root / "pairs.csv").unlink()
    make_folder(root / "sub", n=2)
    os.symlink(root / "sub" / "pairs.csv", root / "pairs.csv")  # inside: fine
    with pytest.raises(FolderError, match="not found"):  # its paths are relative to `root`
        from_folder(root)


@pytest.mark.parametrize("header, words", [
    ("id,Image,audio", "column 'Image'.*rename it to 'image'"),
    ("id,image,AUDIO", "column 'AUDIO'.*rename it to 'audio'"),
    ("ID,image", "column 'ID'.*rename it to 'id'"),
    ("id,Text", "column 'Text'.*rename it to 'text'")])
def test_header_in_the_wrong_case_is_an_error_not_a_dropped_column(tmp_path, header, words):
    (tmp_path / "pairs.csv").write_text(header + "\n" + ",".join(["a"] * header.count(",")) + ",x\n")
    with pytest.raises(FolderError, match=words):
        from_folder(tmp_path)


def test_missing_text_column_is_an_error(tmp_path):
    make_folder(tmp_path, n=2)
    with pytest.raises(FolderError, match=r"`text_column` 'caption' is not a column.*'text'"):
        from_folder(tmp_path, text_column="caption")
    ds = from_folder(tmp_path)  # the default "text" column is optional, and here present
    assert ds.modalities_data["text"] == ["pair 0", "pair 1"]
    write_csv(tmp_path, [{"id": "a", "image": "img/p0.png"}], header=("id", "image"))
    assert from_folder(tmp_path).modalities == ("image",)  # no text column: no text modality
