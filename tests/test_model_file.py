import pytest

from benchkit.errors import ModelFileError
from benchkit.model_file import inspect_model


def test_embedded_model_metadata(model_path):
    info = inspect_model(model_path)
    assert info.architecture == "gemma3"
    assert info.quant == "Q4_K_M"
    assert info.size == 253_113_024
    assert info.sha256 == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert info.context_length == 32768
    assert info.has_chat_template is False


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nope.gguf"
    with pytest.raises(ModelFileError, match="does not exist") as exc:
        inspect_model(path)
    assert str(path) in str(exc.value)


def test_not_gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_text("this is not a model")
    with pytest.raises(ModelFileError, match="not a GGUF file") as exc:
        inspect_model(path)
    assert str(path) in str(exc.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        inspect_model(path)


@pytest.mark.parametrize("keep", [24, 4096, 100_000_000, 253_113_023])
def test_truncated_file(tmp_path, model_path, keep):
    path = tmp_path / "cut.gguf"
    with model_path.open("rb") as src:
        path.write_bytes(src.read(keep))
    with pytest.raises(ModelFileError, match="truncated") as exc:
        inspect_model(path)
    assert str(path) in str(exc.value)


def test_directory_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="not a regular file"):
        inspect_model(tmp_path)
