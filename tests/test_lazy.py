"""Lazy package namespaces: names resolve on first use, unknown ones fail as usual."""

import pytest

from odyssey.lazy import lazy_exports


def test_lazy_exports_resolve_renamed_and_plain_names():
    getattr_, all_ = lazy_exports("pkg", {"dumps": "json", "join": ("os.path", "join"), "pjoin": ("os.path", "join")})
    import json
    import os.path

    assert all_ == ["dumps", "join", "pjoin"]
    assert getattr_("dumps") is json.dumps and getattr_("pjoin") is os.path.join
    with pytest.raises(AttributeError, match="'pkg' has no attribute 'nope'"):
        getattr_("nope")


def test_packages_export_what_they_list():
    import odyssey.analysis
    import odyssey.analysis.probes
    import odyssey.evaluate
    import odyssey.lmul

    for package in (odyssey.analysis, odyssey.analysis.probes, odyssey.evaluate, odyssey.lmul):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
