"""The trust boundary, one kind of value at a time: what passes, what is refused, and the error's words."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo_core import UnsafeValueError, validate
from zoo_core.cli.output import printable

SHA1 = "a" * 40
SHA256 = "b" * 64


def refuses(check: object, value: object, *words: str) -> None:
    with pytest.raises(UnsafeValueError) as raised:
        check(value, "source X: field 'f'")  # type: ignore[operator]
    message = str(raised.value)
    assert message.startswith("source X: field 'f': ") and "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize("name", ["resnet50.a1_in1k", "org/model-v2", "vit_b+16", "A1"])
def test_model_names_that_pass(name: str) -> None:
    assert validate.model_name(name, "here") == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".hidden",
        "a/../b",
        "a//b",
        "a/./b",
        "a/",
        "a b",
        "a\x1b",
        "-x",
        5,
        "a" * 201,
        "org--x",
        "org-/w",
        "org/-w",
        "a./b",
    ],
)
def test_model_names_that_are_refused(name: object) -> None:
    refuses(validate.model_name, name)


@pytest.mark.parametrize(
    "repo", ["timm/resnet18.a1_in1k", "bert-base-uncased", "sentence-transformers/all-MiniLM-L6-v2"]
)
def test_repo_ids_that_pass(repo: str) -> None:
    assert validate.repo_id(repo, "here") == repo


@pytest.mark.parametrize("repo", ["../x", "a/b/c", "a--b/c", "a/b..c", "/abs", "a/.b", "a/b-", "x" * 97, "a b/c"])
def test_repo_ids_that_are_refused(repo: str) -> None:
    refuses(validate.repo_id, repo, "is not a hub repo id")


@pytest.mark.parametrize("revision", ["main", "v1.0", "refs/pr/12", "release/2024-01", SHA1, "a.b"])
def test_revisions_that_pass(revision: str) -> None:
    assert validate.revision(revision, "here") == revision


BAD_REVISIONS = ["", "../x", "a/../b", "/abs", "a/", "a//b", ".hidden", "x/.y", "x.lock", "a b", "a~1", "a^"]


@pytest.mark.parametrize(
    "revision", [*BAD_REVISIONS, "a:b", "a?", "a*", "a[", "a\\b", "a\x00", "@", "a@{1}", "a.", "x" * 256]
)
def test_revisions_that_are_refused(revision: str) -> None:
    refuses(validate.revision, revision, "is not a revision", "use a branch, a tag or a 40-hex commit")


def test_commits_are_forty_lowercase_hex_digits() -> None:
    assert validate.commit(SHA1, "here") == SHA1 and validate.is_commit(SHA1) and not validate.is_commit("main")
    for bad in ("A" * 40, "a" * 39, "a" * 41, "g" * 40, "../" + "a" * 37, None):
        refuses(validate.commit, bad, "is not a commit")


def test_etags_are_content_digests() -> None:
    assert validate.etag(SHA1, "here") == SHA1 and validate.etag(SHA256, "here") == SHA256
    for bad in ("/etc/passwd", "../../.bashrc", "a" * 50, "B" * 64, 'W/"abc"', ""):
        refuses(validate.etag, bad, "is not a hub ETag")


def test_digests_are_lower_cased_and_sized_by_kind() -> None:
    assert validate.digest("AB" * 32, "here") == "ab" * 32
    assert validate.digest(SHA1, "here", kind="sha1") == SHA1
    refuses(validate.digest, SHA1, "is not a sha256: expected 64 hexadecimal characters")
    refuses(validate.digest, "x" * 64, "is not a sha256")


@pytest.mark.parametrize("name", ["model.safetensors", "1_Pooling/config.json", ".gitattributes", "a..b"])
def test_file_names_that_pass(name: str) -> None:
    assert validate.file_name(name, "here") == name


@pytest.mark.parametrize(
    "name", ["", "/etc/passwd", "../x", "a/../../b", "a/./b", "a//b", "a/", "a\\b", "C:/x", "a\nb", "\x1b", "x" * 256]
)
def test_file_names_that_are_refused(name: str) -> None:
    refuses(validate.file_name, name, "is not a safe file name")


def test_endpoints_are_http_urls() -> None:
    assert validate.endpoint("https://mirror.example/hub/", "here") == "https://mirror.example/hub"
    assert validate.endpoint("http://127.0.0.1:8080", "here") == "http://127.0.0.1:8080"
    bad_urls = ("file:///etc", "ftp://x", "mirror.example", "https://", "https://x/?q=1", "https://x/a b")
    for bad in (*bad_urls, "http://[::1", "http://x:99999", "https://x/\u202eevil", "https://x/\x00", "http://u:pw@x"):
        refuses(validate.endpoint, bad, "is not a hub URL")


def test_a_path_must_stay_under_its_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    assert validate.inside(root, root / "sub" / "new.bin", "here") == (root / "sub" / "new.bin").resolve()
    (root / "escape").symlink_to(tmp_path)
    for path in (root / ".." / "x", tmp_path / "x", root / "escape" / "x"):
        with pytest.raises(UnsafeValueError, match="outside"):
            validate.inside(root, path, "here")


def test_values_are_quoted_and_shortened_in_errors() -> None:
    with pytest.raises(UnsafeValueError) as raised:
        validate.etag("\x1b[2J" + "x" * 200, "server")
    assert "\x1b" not in str(raised.value) and "..." in str(raised.value) and len(str(raised.value)) < 200


def test_printable_keeps_text_on_one_harmless_line() -> None:
    assert printable("plain text, ünïcode") == "plain text, ünïcode"
    assert printable("a\x1b[2Jb\x07c\x9bd\u202ee\x00f") == "a?[2Jb?c?d?e?f"
    assert printable("one\ntwo\tthree\u2028four") == "one two three four"


def test_archive_members_are_regular_files_of_the_promised_size() -> None:
    import tarfile

    member = tarfile.TarInfo("files/m/model.bin")
    member.size = 10
    assert validate.archive_member(member, 10, "here") is member
    with pytest.raises(UnsafeValueError, match="is 10 bytes, the manifest says 3"):
        validate.archive_member(member, 3, "here")
    member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(UnsafeValueError, match="is a link or a folder"):
        validate.archive_member(member, 10, "here")
