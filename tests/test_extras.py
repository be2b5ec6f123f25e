"""A feature whose extra is not installed fails with one line naming the extra."""

import sys

import pytest

from odyssey.cli import run


@pytest.mark.parametrize(("package", "extra", "argv", "modules"), [
    ("datasketch", "similarity", ["corpus", "quality", "{tmp}"],
     ["odyssey.corpora.near_duplicates", "odyssey.corpora.quality"]),
    ("numba", "lmul", ["lmul", "precision", "--samples", "1000"],
     ["odyssey.lmul.kernels", "odyssey.lmul.patch", "odyssey.lmul.studies"]),
])
def test_missing_extra_is_one_line_naming_it(package, extra, argv, modules, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, package, None)  # `import package` now raises ImportError
    for module in modules:  # imported afresh, without the package
        monkeypatch.delitem(sys.modules, module, raising=False)
    code = run([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"needs {package}" in err and f"pip install 'odyssey[{extra}]'" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
