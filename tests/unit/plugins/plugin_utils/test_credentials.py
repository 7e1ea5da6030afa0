# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which credentials uv would send for a lock URL: precedence, scoping, and no leaks."""

from __future__ import annotations

import base64
import os

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._credentials import (
    CredentialProvider,
    Credentials,
    IndexConfig,
    env_var_name,
    strip_userinfo,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._download import ArtifactStore

FILE = "https://pkgs.example.test/packages/ab/cd/demo-1.0-py3-none-any.whl"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


@pytest.fixture()
def home(tmp_path):
    """An empty home directory: no ~/.netrc, no ~/.config/uv/uv.toml."""
    path = tmp_path / "home"
    path.mkdir()
    return str(path)


def provider(home, project=None, **env) -> CredentialProvider:
    env.setdefault("XDG_CONFIG_DIRS", os.path.join(home, "no-system-config"))
    return CredentialProvider(project_dir=project, environ=env, home=home)


def write(path, text) -> str:
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w", encoding="utf-8") as handle:
        handle.write(text)
    return str(path)


def project_with_index(tmp_path, name="private", url="https://pkgs.example.test/simple/"):
    project = tmp_path / "project"
    write(project / "pyproject.toml", '[project]\nname = "p"\nversion = "0"\n\n'
                                      '[[tool.uv.index]]\nname = "%s"\nurl = "%s"\n' % (name, url))
    return str(project)


# -- env var names -------------------------------------------------------------------------


@pytest.mark.parametrize("name, expected", [
    ("private", "UV_INDEX_PRIVATE"),
    ("my-index.v2", "UV_INDEX_MY_INDEX_V2"),
    ("Corp_Mirror", "UV_INDEX_CORP_MIRROR"),
])
def test_env_var_name(name, expected):
    assert env_var_name(name) == expected


# -- (a) userinfo in an index URL from the environment --------------------------------------


@pytest.mark.parametrize("var", ["UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_INDEX"])
def test_index_url_userinfo_applies_to_same_origin_only(home, var):
    creds = provider(home, **{var: "https://alice:s3cret@pkgs.example.test/simple/"})
    assert creds.authorization(FILE) == basic("alice", "s3cret")
    # Same host, other port or scheme, or another host: nothing.
    assert creds.authorization("https://pkgs.example.test:8443/packages/demo.whl") is None
    assert creds.authorization("http://pkgs.example.test/packages/demo.whl") is None
    assert creds.authorization("https://files.example.test/packages/demo.whl") is None


def test_default_ports_are_the_same_origin(home):
    creds = provider(home, UV_INDEX_URL="https://alice:s3cret@pkgs.example.test:443/simple/")
    assert creds.authorization(FILE) == basic("alice", "s3cret")


def test_space_separated_lists_and_named_form(home):
    creds = provider(home, UV_EXTRA_INDEX_URL="https://a.example.test/simple/ https://bob:pw1@b.example.test/simple/",
                     UV_INDEX="first=https://carol:pw2@c.example.test/simple/  https://d.example.test/simple/")
    assert creds.authorization("https://b.example.test/f.whl") == basic("bob", "pw1")
    assert creds.authorization("https://c.example.test/f.whl") == basic("carol", "pw2")
    assert creds.authorization("https://a.example.test/f.whl") is None
    assert [i.name for i in creds.indexes()] == ["first", None, None, None]


def test_percent_encoded_userinfo_is_decoded(home):
    creds = provider(home, UV_INDEX_URL="https://us%40er:p%3Ass%2Fword@pkgs.example.test/simple/")
    assert creds.authorization(FILE) == basic("us@er", "p:ss/word")


def test_token_only_password(home):
    creds = provider(home, UV_INDEX="https://:tok3n@pkgs.example.test/simple/")
    assert creds.authorization(FILE) == basic("", "tok3n")


# -- (b) UV_INDEX_<NAME>_USERNAME / _PASSWORD for named indexes -----------------------------


def test_named_index_from_pyproject_takes_env_credentials(home, tmp_path):
    project = project_with_index(tmp_path, name="corp-mirror.v2")
    creds = provider(home, project, UV_INDEX_CORP_MIRROR_V2_USERNAME="ci", UV_INDEX_CORP_MIRROR_V2_PASSWORD="pw")
    found = creds.credentials_for(FILE)
    assert found.authorization() == basic("ci", "pw")
    assert found.source == "UV_INDEX_CORP_MIRROR_V2_USERNAME/UV_INDEX_CORP_MIRROR_V2_PASSWORD"


def test_named_index_needs_the_project_or_env_to_be_known(home, tmp_path):
    env = dict(UV_INDEX_PRIVATE_USERNAME="ci", UV_INDEX_PRIVATE_PASSWORD="pw")
    assert provider(home, None, **env).authorization(FILE) is None
    assert provider(home, project_with_index(tmp_path), **env).authorization(FILE) == basic("ci", "pw")
    assert provider(home, None, UV_INDEX="private=https://pkgs.example.test/simple/", **env).authorization(FILE) \
        == basic("ci", "pw")


def test_named_index_without_env_credentials(home, tmp_path):
    assert provider(home, project_with_index(tmp_path)).authorization(FILE) is None


def test_password_only_env_credentials(home, tmp_path):
    creds = provider(home, project_with_index(tmp_path), UV_INDEX_PRIVATE_PASSWORD="tok")
    assert creds.authorization(FILE) == basic("", "tok")


def test_named_index_from_user_uv_toml(home, tmp_path):
    write(os.path.join(home, ".config", "uv", "uv.toml"),
          '[[index]]\nname = "private"\nurl = "https://pkgs.example.test/simple/"\n')
    env = dict(UV_INDEX_PRIVATE_USERNAME="ci", UV_INDEX_PRIVATE_PASSWORD="pw")
    assert provider(home, **env).authorization(FILE) == basic("ci", "pw")
    # XDG_CONFIG_HOME moves the user config; ~/.config is then not read.
    xdg = tmp_path / "xdg"
    assert provider(home, XDG_CONFIG_HOME=str(xdg), **env).authorization(FILE) is None
    write(xdg / "uv" / "uv.toml", '[[index]]\nname = "private"\nurl = "https://pkgs.example.test/simple/"\n')
    assert provider(home, XDG_CONFIG_HOME=str(xdg), **env).authorization(FILE) == basic("ci", "pw")


def test_system_uv_toml_via_xdg_config_dirs(home, tmp_path):
    write(tmp_path / "sys" / "uv" / "uv.toml", 'index-url = "https://sys:pw@pkgs.example.test/simple"\n')
    assert provider(home, XDG_CONFIG_DIRS=str(tmp_path / "sys")).authorization(FILE) == basic("sys", "pw")


def test_project_uv_toml_replaces_pyproject_tool_uv(home, tmp_path):
    project = project_with_index(tmp_path, url="https://old:pw@pkgs.example.test/simple/")
    assert provider(home, project).authorization(FILE) == basic("old", "pw")
    write(os.path.join(project, "uv.toml"), '[[index]]\nname = "private"\nurl = "https://new:pw@pkgs.example.test/simple/"\n')
    assert provider(home, project).authorization(FILE) == basic("new", "pw")


def test_uv_no_config_and_uv_config_file(home, tmp_path):
    write(os.path.join(home, ".config", "uv", "uv.toml"), 'extra-index-url = ["https://user:pw@pkgs.example.test/simple"]\n')
    assert provider(home).authorization(FILE) == basic("user", "pw")
    assert provider(home, UV_NO_CONFIG="1").authorization(FILE) is None
    other = write(tmp_path / "other.toml", 'index-url = "https://other:pw@pkgs.example.test/simple"\n')
    assert provider(home, UV_CONFIG_FILE=other).authorization(FILE) == basic("other", "pw")


def test_broken_config_is_ignored(home, tmp_path):
    write(os.path.join(home, ".config", "uv", "uv.toml"), "[[index]\nname = ")
    assert provider(home).authorization(FILE) is None


# -- precedence -----------------------------------------------------------------------------


def test_env_credentials_beat_index_url_userinfo(home, tmp_path):
    project = project_with_index(tmp_path, url="https://urluser:urlpw@pkgs.example.test/simple/")
    assert provider(home, project).authorization(FILE) == basic("urluser", "urlpw")
    assert provider(home, project, UV_INDEX_PRIVATE_USERNAME="env", UV_INDEX_PRIVATE_PASSWORD="envpw") \
        .authorization(FILE) == basic("env", "envpw")


def test_artifact_url_userinfo_beats_everything(home, tmp_path):
    write(os.path.join(home, ".netrc"), "machine pkgs.example.test login n password npw\n")
    creds = provider(home, project_with_index(tmp_path), UV_INDEX_PRIVATE_USERNAME="env", UV_INDEX_PRIVATE_PASSWORD="e")
    assert creds.authorization("https://own:pw@pkgs.example.test/f.whl") == basic("own", "pw")


def test_environment_indexes_come_before_project_indexes(home, tmp_path):
    project = project_with_index(tmp_path, url="https://proj:pw@pkgs.example.test/simple/")
    creds = provider(home, project, UV_INDEX="https://env:pw@pkgs.example.test/simple/")
    assert creds.authorization(FILE) == basic("env", "pw")


def test_longest_matching_index_root_wins_on_a_shared_origin(home):
    creds = provider(home, UV_INDEX="https://a:1@pkgs.example.test/simple/ https://b:2@pkgs.example.test/team/simple/")
    assert creds.authorization("https://pkgs.example.test/team/packages/f.whl") == basic("b", "2")
    assert creds.authorization("https://pkgs.example.test/packages/f.whl") == basic("a", "1")


def test_index_without_credentials_does_not_hide_one_with(home):
    creds = provider(home, UV_INDEX="https://pkgs.example.test/simple/ https://a:1@pkgs.example.test/other/simple/")
    assert creds.authorization(FILE) == basic("a", "1")


# -- (c) netrc -------------------------------------------------------------------------------


def test_netrc_in_home(home):
    write(os.path.join(home, ".netrc"), "machine pkgs.example.test\n  login n\n  password npw\n")
    found = provider(home).credentials_for(FILE)
    assert found.authorization() == basic("n", "npw") and found.source == "netrc"
    assert provider(home).authorization("https://other.example.test/f.whl") is None


def test_netrc_env_var_replaces_home_netrc(home, tmp_path):
    write(os.path.join(home, ".netrc"), "machine pkgs.example.test login home password hpw\n")
    other = write(tmp_path / "netrc", "machine pkgs.example.test login env password epw\n")
    assert provider(home, NETRC=other).authorization(FILE) == basic("env", "epw")


def test_netrc_default_entry(home):
    write(os.path.join(home, ".netrc"), "default login any password apw\n")
    assert provider(home).authorization(FILE) == basic("any", "apw")


def test_explicit_credentials_beat_netrc(home, tmp_path):
    write(os.path.join(home, ".netrc"), "machine pkgs.example.test login n password npw\n")
    assert provider(home, UV_INDEX_URL="https://u:pw@pkgs.example.test/simple/").authorization(FILE) == basic("u", "pw")
    project = project_with_index(tmp_path)
    assert provider(home, project, UV_INDEX_PRIVATE_USERNAME="e", UV_INDEX_PRIVATE_PASSWORD="epw") \
        .authorization(FILE) == basic("e", "epw")


def test_netrc_supplies_a_missing_password_for_the_same_login(home):
    write(os.path.join(home, ".netrc"), "machine pkgs.example.test login u password npw\n")
    assert provider(home, UV_INDEX_URL="https://u@pkgs.example.test/simple/").authorization(FILE) == basic("u", "npw")
    # Another login: the explicit username stands, without a password.
    assert provider(home, UV_INDEX_URL="https://v@pkgs.example.test/simple/").authorization(FILE) == basic("v", "")


def test_unreadable_netrc_is_ignored(home):
    write(os.path.join(home, ".netrc"), "machine pkgs.example.test login\n")
    provider(home).authorization(FILE)  # no exception


# -- scope and leaks -------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["file:///srv/wheels/f.whl", "https://pkgs.example.test:notaport/f.whl", "", "f.whl"])
def test_non_http_and_malformed_urls_get_nothing(home, url):
    assert provider(home, UV_INDEX_URL="https://u:pw@pkgs.example.test/simple/").authorization(url) is None


def test_reprs_show_no_secret(home, tmp_path):
    creds = provider(home, project_with_index(tmp_path), UV_INDEX_PRIVATE_USERNAME="someuser",
                     UV_INDEX_PRIVATE_PASSWORD="hunter2-secret", UV_INDEX="x=https://urluser:urlpw@x.example.test/s/")
    found = creds.credentials_for(FILE)
    text = repr(found) + repr(creds) + repr(creds.indexes()) + str(found)
    for secret in ("someuser", "hunter2-secret", "urluser", "urlpw"):
        assert secret not in text
    assert "urlpw" not in repr(IndexConfig(url="https://urluser:urlpw@x.example.test/s/"))
    assert "pw" not in repr(Credentials("u", "pw", "test"))


def test_redact_scrubs_what_was_handed_out(home, tmp_path):
    creds = provider(home, project_with_index(tmp_path), UV_INDEX_PRIVATE_USERNAME="someuser",
                     UV_INDEX_PRIVATE_PASSWORD="hunter2-secret")
    header = creds.authorization(FILE)
    token = header.split(" ", 1)[1]
    text = "boom someuser hunter2-secret %s end" % token
    assert creds.redact(text) == "boom *** *** *** end"


def test_missing_hint_names_the_index_variables(home, tmp_path):
    hint = provider(home, project_with_index(tmp_path)).missing_hint(FILE)
    assert "UV_INDEX_PRIVATE_USERNAME" in hint and "UV_INDEX_PRIVATE_PASSWORD" in hint and "pkgs.example.test" in hint
    assert "netrc" in provider(home).missing_hint(FILE)


def test_strip_userinfo():
    assert strip_userinfo("https://u:p@h.example.test:8080/a?b#c") == "https://h.example.test:8080/a?b#c"
    assert strip_userinfo("https://h.example.test/a@b") == "https://h.example.test/a@b"


def test_artifact_store_defaults_to_environment_and_user_config(tmp_path):
    store = ArtifactStore(str(tmp_path))
    assert isinstance(store.credentials, CredentialProvider) and store.credentials.project_dir is None
    mine = CredentialProvider(project_dir=str(tmp_path))
    assert ArtifactStore(str(tmp_path), credentials=mine).credentials is mine
