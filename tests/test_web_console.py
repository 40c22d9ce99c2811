"""The web console end to end: a real ``filetier serve`` and a real headless Chromium.

Screenshots of every page are saved under ``tmp/artifacts/web-console/`` (the path is
printed) so a person can look at them.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import time
import zlib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from testbed.provider_server import ProviderServer
from tests.support.web_console import (
    ALICE_TOKEN,
    BOB_TOKEN,
    CHROMIUM,
    CHROMIUM_ARGS,
    OPERATOR_TOKEN,
    Server,
    artifacts_dir,
    cli,
    console_server,
)

# Skipped only outside CI: there, scripts/test installs chromium and a missing one fails.
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="needs Debian's chromium (scripts/test installs it)",
)

if CHROMIUM.exists():
    from playwright.sync_api import Browser, Page, expect, sync_playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module, with Kimi configured against a loopback stand-in."""
    root = tmp_path_factory.mktemp("console")
    (root / "home").mkdir()
    with (
        ProviderServer(api_key="sk-console-test-key-123456") as provider,
        console_server(
            root / "home",
            root / "serve.log",
            KIMI_API_KEY=provider.api_key,
            KIMI_BASE_URL=provider.base_url,
        ) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    yield opened
    context.close()


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")


def sign_in(page: Page, base: str, token: str) -> None:
    page.goto(f"{base}/files")
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/files")


def api_upload(base: str, token: str, name: str, data: bytes) -> str:
    answer = httpx.post(
        f"{base}/v1/files",
        params={"filename": name},
        content=data,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["file_id"])


def test_owner_uploads_finds_opens_downloads_deletes_and_signs_out(
    server: Server, page: Page, tmp_path: Path
) -> None:
    base = server.base
    page.goto(f"{base}/files")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "01-signin")
    sign_in(page, base, ALICE_TOKEN)
    expect(page.get_by_text("No files yet")).to_be_visible()

    # Two files through the file input; each gets a progress bar that fills.
    alpha = b"alpha quarterly report\n" * 200_000  # ~4.6 MB: progress events while it goes
    beta = b"beta: a second, smaller file\n"
    (tmp_path / "alpha-report.txt").write_bytes(alpha)
    (tmp_path / "beta-notes.txt").write_bytes(beta)
    page.evaluate(
        """() => {
          window.__seen = [];
          new MutationObserver(() => {
            document.querySelectorAll('#uploads .up-status').forEach(
              (s) => window.__seen.push(s.textContent));
          }).observe(document.getElementById('uploads'),
                     {subtree: true, childList: true, characterData: true});
        }"""
    )
    page.locator("#file-input").set_input_files(
        [str(tmp_path / "alpha-report.txt"), str(tmp_path / "beta-notes.txt")]
    )
    rows = page.locator("#uploads li")
    expect(rows).to_have_count(2)
    for i in range(2):
        expect(rows.nth(i).locator(".up-status")).to_have_text("Uploaded", timeout=30_000)
        assert rows.nth(i).locator("progress").evaluate("p => p.value") == 100
    seen = page.evaluate("window.__seen")
    assert any(s.startswith("Uploading") for s in seen), seen
    # The list below shows them without a reload.
    table = page.locator("table.files tbody tr")
    expect(table).to_have_count(2)
    expect(page.locator("#file-count")).to_have_text("2 files")
    shot(page, "02-uploaded")
    shot(page, "03-files")

    # Find one by name.
    page.get_by_label("Name contains").fill("alpha")
    page.get_by_role("button", name="Search").click()
    expect(table).to_have_count(1)
    expect(table.first).to_contain_text("alpha-report.txt")
    expect(page.get_by_text("1 file match")).to_be_visible()
    shot(page, "04-search")

    # Hand it to a provider through the API: the list and its page show the copy.
    alpha_id = page.get_by_role("link", name="alpha-report.txt", exact=True).get_attribute("href")
    assert alpha_id is not None
    given = httpx.post(
        f"{base}/v1/files/{alpha_id.rsplit('/', 1)[-1]}/provider-id",
        json={"provider": "kimi"},
        headers={"Authorization": f"Bearer {ALICE_TOKEN}"},
    )
    assert given.status_code == 200, given.text
    page.reload()
    expect(table.first.locator(".chip")).to_have_text("kimi")

    # Its page: metadata, SHA-256, tiers, provider copies, preview, history.
    page.get_by_role("link", name="alpha-report.txt", exact=True).click()
    expect(page.get_by_role("heading", name="alpha-report.txt")).to_be_visible()
    expect(page.locator("#sha256")).to_have_text(hashlib.sha256(alpha).hexdigest())
    expect(page.locator("li.yes", has_text="Primary store")).to_be_visible()
    expect(page.get_by_text("too large to preview here")).to_be_visible()
    copies = page.locator("table[aria-labelledby='copies-title'] tbody tr")
    expect(copies).to_have_count(1)
    expect(copies.first).to_contain_text(given.json()["provider_file_id"])
    expect(copies.first).to_contain_text("kimi")
    file_url = page.url
    shot(page, "05-file")

    # Download: the same bytes.
    with page.expect_download() as info:
        page.get_by_role("link", name="Download", exact=True).click()
    download = info.value
    assert download.suggested_filename == "alpha-report.txt"
    saved = tmp_path / "downloaded"
    download.save_as(saved)
    assert saved.read_bytes() == alpha
    page.reload()
    expect(page.locator("table[aria-labelledby='history-title'] tbody tr").first).to_be_visible()

    # Delete, with a confirmation page first.
    page.get_by_role("link", name="Delete", exact=True).click()
    expect(page.get_by_role("heading", name="Delete this file?")).to_be_visible()
    shot(page, "06-delete-confirm")
    page.get_by_role("button", name="Delete file").click()
    expect(page).to_have_url(f"{base}/files")
    expect(page.get_by_role("status")).to_contain_text("Deleted alpha-report.txt.")
    expect(table).to_have_count(1)
    expect(table.first).to_contain_text("beta-notes.txt")
    page.goto(file_url)
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    page.goto(f"{base}/files")
    page.get_by_role("link", name="beta-notes.txt", exact=True).click()
    expect(page.locator("pre.preview")).to_have_text(beta.decode())

    page.goto(f"{base}/overview")
    expect(page.get_by_role("heading", name="Hit rate per tier")).to_be_visible()
    expect(page.locator("svg[role='img']").first).to_be_visible()
    shot(page, "07-overview")

    # Sign out: the session is gone, pages send back to sign-in.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto(f"{base}/files")
    expect(page).to_have_url(re.compile(r"/signin"))


def test_second_owner_sees_none_of_the_first_owners_files(server: Server, page: Page) -> None:
    base = server.base
    secret = b"alice's private plan\n"
    alice_id = api_upload(base, ALICE_TOKEN, "alice-private-plan.txt", secret)
    sign_in(page, base, BOB_TOKEN)
    expect(page.get_by_text("alice-private-plan")).to_have_count(0)
    page.get_by_label("Name contains").fill("alice")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No file matches this search.")).to_be_visible()
    # Not on the overview either, and no operator pages.
    page.goto(f"{base}/overview")
    expect(page.locator(".stat-value").first).to_have_text("0")
    expect(page.get_by_role("link", name="Maintenance")).to_have_count(0)
    for path in ("", "/download", "/preview", "/delete"):
        answer = page.goto(f"{base}/files/{alice_id}{path}")
        assert answer is not None
        assert answer.status == 404, path
        assert secret.decode() not in page.content()
    shot(page, "08-other-owner-404")
    answer = page.goto(f"{base}/maintenance")
    assert answer is not None
    assert answer.status == 403
    # Alice still has it.
    got = httpx.get(
        f"{base}/v1/files/{alice_id}/content", headers={"Authorization": f"Bearer {ALICE_TOKEN}"}
    )
    assert got.content == secret


def test_operator_sees_maintenance_plans_before_running(server: Server, page: Page) -> None:
    base = server.base
    sign_in(page, base, OPERATOR_TOKEN)
    expect(page.locator(".badge")).to_have_text("operator")
    page.get_by_role("link", name="Maintenance").click()
    shot(page, "09-maintenance")
    for name, heading in (("gc", "Garbage collection"), ("cleanup", "Cleanup")):
        page.goto(f"{base}/maintenance/{name}")
        expect(page.get_by_role("heading", name=f"{heading}: plan")).to_be_visible()
        expect(page.get_by_text("Planned (nothing changed yet)")).to_be_visible()
    page.goto(f"{base}/maintenance/verify")
    expect(page.get_by_text("no problems found")).to_be_visible()
    shot(page, "10-verify")

    # An object no row names, older than the grace window: gc plans it, then removes it
    # only when the operator confirms.
    junk = b"left behind by an interrupted upload"
    digest = hashlib.sha256(junk).hexdigest()
    orphan = server.home / "objects" / "sha256" / digest[:2] / digest[2:4] / digest
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(junk)
    old = time.time() - 3 * 86400
    os.utime(orphan, (old, old))
    page.goto(f"{base}/maintenance/gc")
    plan = page.get_by_role("row", name=re.compile("delete_orphan_object"))
    expect(plan).to_contain_text(digest)
    assert orphan.exists(), "showing the plan must not change anything"
    shot(page, "11-gc-plan")
    page.get_by_role("button", name="Run garbage collection now").click()
    expect(page.get_by_role("heading", name="Garbage collection: result")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("1 action taken")
    assert not orphan.exists()
    shot(page, "12-gc-done")
    page.goto(f"{base}/overview")
    providers = page.locator("section[aria-labelledby='providers-title']")
    expect(providers.locator("svg[role='img']")).to_be_visible()
    expect(providers.locator("tbody tr", has_text="kimi")).to_contain_text("1,000")
    shot(page, "15-overview-operator")


def test_narrow_window_files_page(server: Server, browser: Browser) -> None:
    api_upload(server.base, BOB_TOKEN, "a-rather-long-file-name-for-a-phone.txt", b"x" * 10)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, server.base, BOB_TOKEN)
        expect(page.get_by_role("link", name="Choose files")).to_have_count(0)
        expect(page.locator("label[for='file-input']")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"
        shot(page, "13-files-narrow")
    finally:
        context.close()


# -- the session's protections, as an attacker's client sees them ---------------------------


def _signed_in_client(base: str, token: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, follow_redirects=False)
    form = client.get("/signin")
    secret = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert secret is not None
    signed = client.post("/signin", data={"token": token, "csrf_token": secret.group(1)})
    assert signed.status_code == 303, signed.text
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    page = client.get("/files")
    assert page.status_code == 200
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert csrf is not None
    return client, csrf.group(1)


def test_requests_without_the_csrf_token_are_refused(server: Server) -> None:
    base = server.base
    file_id = api_upload(base, ALICE_TOKEN, "keep-me.txt", b"must survive\n")
    client, csrf = _signed_in_client(base, ALICE_TOKEN)
    with closing(client):
        csp = client.get("/files").headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        for token in (None, "", "forged-" + csrf[:10]):
            data = {} if token is None else {"csrf_token": token}
            refused = client.post(f"/files/{file_id}/delete", data=data)
            assert refused.status_code == 403, refused.text
            assert "security token" in refused.text
        upload = client.post(
            "/files/upload", params={"filename": "sneaky.txt"}, content=b"unwanted"
        )
        assert upload.status_code == 403
        assert client.post("/signout").status_code == 403
        # Nothing changed: the file is there, nothing was uploaded, still signed in.
        listing = httpx.get(
            f"{base}/v1/files", headers={"Authorization": f"Bearer {ALICE_TOKEN}"}
        ).json()
        names = {item["filename"] for item in listing["items"]}
        assert "keep-me.txt" in names
        assert "sneaky.txt" not in names
        assert client.get("/files").status_code == 200
        # With the token, the same requests work.
        done = client.post(f"/files/{file_id}/delete", data={"csrf_token": csrf})
        assert done.status_code == 303
        up = client.post(
            "/files/upload",
            params={"filename": "wanted.txt"},
            content=b"wanted",
            headers={"X-CSRF-Token": csrf},
        )
        assert up.status_code == 201, up.text


def test_sign_in_refuses_a_forged_form_and_a_wrong_token(server: Server) -> None:
    with httpx.Client(base_url=server.base, follow_redirects=False) as client:
        forged = client.post("/signin", data={"token": ALICE_TOKEN, "csrf_token": "x" * 43})
        assert forged.status_code == 403
        assert "set-cookie" not in forged.headers or "filetier_session" not in str(
            forged.headers.get_list("set-cookie")
        )
        form = client.get("/signin")
        secret = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert secret is not None
        wrong = client.post(
            "/signin", data={"token": "not-a-real-token-000000", "csrf_token": secret.group(1)}
        )
        assert wrong.status_code == 401
        assert "not accepted" in wrong.text
        assert "not-a-real-token" not in wrong.text
        # An offsite "next" never becomes the redirect target.
        form = client.get("/signin", params={"next": "//evil.example/x"})
        secret = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert secret is not None
        signed = client.post(
            "/signin",
            data={
                "token": ALICE_TOKEN,
                "csrf_token": secret.group(1),
                "next": "//evil.example/x",
            },
        )
        assert signed.headers["location"] == "/files"


def test_sign_in_reads_no_form_larger_than_its_own(server: Server) -> None:
    """The sign-in route needs no token, so it must not parse whatever it is sent: a
    form over 16 KiB, one of unknown length (chunked) or one with a file part is refused
    unread, and signing in still works."""
    form_type = {"content-type": "application/x-www-form-urlencoded"}
    with httpx.Client(base_url=server.base, follow_redirects=False) as client:
        big = client.post("/signin", content=b"token=" + b"x" * 64 * 1024, headers=form_type)
        assert big.status_code == 413
        assert "not one this page sends" in big.text

        def chunks() -> Iterator[bytes]:
            yield b"token=x&csrf_token=y"

        assert client.post("/signin", content=chunks(), headers=form_type).status_code == 413
        with_file = client.post(
            "/signin", data={"token": "x"}, files={"upload": ("a.bin", b"z" * 100)}
        )
        assert with_file.status_code == 413
    client, _csrf = _signed_in_client(server.base, ALICE_TOKEN)
    client.close()


def test_behind_a_tls_proxy_the_session_cookie_is_secure(tmp_path: Path) -> None:
    """``FILETIER_PUBLIC_URL=https://...``: browsers reach the console through a TLS proxy
    while the server sees plain http. Its cookies must still be ``Secure``, so a browser
    never sends the session over plain http."""
    (tmp_path / "home").mkdir()
    with (
        console_server(
            tmp_path / "home",
            tmp_path / "serve.log",
            FILETIER_PUBLIC_URL="https://files.example.com/",
            FILETIER_ALLOWED_HOSTS="files.example.com,127.0.0.1",
        ) as running,
        httpx.Client(base_url=running.base, follow_redirects=False) as client,
    ):
        form = client.get("/signin")
        assert "Secure" in form.headers["set-cookie"]
        secret = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert secret is not None
        # A browser sends a Secure cookie over https only: here, through "the proxy".
        cookie = form.headers["set-cookie"].split(";", 1)[0]
        signed = client.post(
            "/signin",
            data={"token": ALICE_TOKEN, "csrf_token": secret.group(1)},
            headers={"Cookie": cookie},
        )
        assert signed.status_code == 303
        session = [c for c in signed.headers.get_list("set-cookie") if "session" in c]
        assert session and all("Secure" in c for c in session), session


def test_refused_uploads_say_why_in_the_page(tmp_path: Path, browser: Browser) -> None:
    (tmp_path / "home").mkdir()
    files = {
        "ok.txt": b"fits\n",
        "big.txt": b"x" * 5000,
        "dot.png": _png(),
        "second.txt": b"also fits\n",
        "third.txt": b"one too many\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with console_server(
        tmp_path / "home",
        tmp_path / "serve.log",
        FILETIER_MAX_FILE_SIZE="1000",
        FILETIER_TYPE_LIMITS="image/png=0",
        FILETIER_OWNER_QUOTA_FILES="2",
    ) as small:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        try:
            sign_in(page, small.base, ALICE_TOKEN)
            page.locator("#file-input").set_input_files(
                [str(tmp_path / n) for n in ("ok.txt", "big.txt", "dot.png")]
            )
            rows = page.locator("#uploads li")
            expect(rows.nth(0).locator(".up-status")).to_have_text("Uploaded")
            expect(rows.nth(1).locator(".up-status")).to_contain_text("Too large:")
            expect(rows.nth(1).locator(".up-status")).to_contain_text("1,000 bytes")
            expect(rows.nth(2).locator(".up-status")).to_contain_text("Type not allowed:")
            page.locator("#file-input").set_input_files(str(tmp_path / "second.txt"))
            expect(rows.nth(3).locator(".up-status")).to_have_text("Uploaded")
            page.locator("#file-input").set_input_files(str(tmp_path / "third.txt"))
            expect(rows.nth(4).locator(".up-status")).to_contain_text("Quota full:")
            shot(page, "14-upload-refusals")
        finally:
            context.close()
        listing = httpx.get(
            f"{small.base}/v1/files", headers={"Authorization": f"Bearer {ALICE_TOKEN}"}
        ).json()
        assert sorted(item["filename"] for item in listing["items"]) == ["ok.txt", "second.txt"]


PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 100]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)  # 2x2, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00\x00\x00\xff\x00" * 2)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def test_previews_are_inline_only_for_safe_types_and_never_sniffed(
    server: Server, page: Page
) -> None:
    base = server.base
    png_id = api_upload(base, ALICE_TOKEN, "dot.png", _png())
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    svg_id = api_upload(base, ALICE_TOKEN, "evil.svg", svg)
    html = b"<html><body><script>alert('owned')</script>hello</body></html>"
    html_id = api_upload(base, ALICE_TOKEN, "page.html", html)
    pdf_id = api_upload(base, ALICE_TOKEN, "paper.pdf", PDF)
    client, _ = _signed_in_client(base, ALICE_TOKEN)
    with closing(client):
        image = client.get(f"/files/{png_id}/preview")
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"
        assert image.headers["content-disposition"].startswith("inline;")
        assert image.headers["x-content-type-options"] == "nosniff"
        assert image.content == _png()
        pdf = client.get(f"/files/{pdf_id}/preview")
        assert pdf.status_code == 200
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.headers["content-disposition"].startswith("inline;")
        assert pdf.headers["x-content-type-options"] == "nosniff"
        assert pdf.headers["content-security-policy"] == "frame-ancestors 'self'"
        assert (
            f'<iframe class="preview pdf" src="/files/{pdf_id}/preview"'
            in client.get(f"/files/{pdf_id}").text
        )
        # SVG can carry script: it gets no inline preview at all.
        assert client.get(f"/files/{svg_id}/preview").status_code == 404
        # HTML is shown as escaped text inside the console page, never rendered.
        assert client.get(f"/files/{html_id}/preview").status_code == 404
        shown = client.get(f"/files/{html_id}")
        assert shown.status_code == 200
        assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in shown.text
        assert "<script>alert" not in shown.text
        # Downloads are attachments with the API's sandbox policy.
        download = client.get(f"/files/{svg_id}/download")
        assert download.headers["content-disposition"].startswith("attachment;")
        assert "sandbox" in download.headers["content-security-policy"]
        assert download.content == svg
    # In the browser, under the page's strict policy, the image is drawn.
    sign_in(page, base, ALICE_TOKEN)
    page.goto(f"{base}/files/{png_id}")
    image = page.get_by_role("img", name="Preview of dot.png")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 2
    shot(page, "16-image-preview")
    page.goto(f"{base}/files/{html_id}")
    expect(page.locator("pre.preview")).to_contain_text("<script>alert('owned')</script>")
    shot(page, "17-html-shown-as-text")


def test_keyboard_only_sign_in_and_navigation(server: Server, page: Page) -> None:
    base = server.base
    page.goto(f"{base}/signin")
    # The token field has focus on arrival (autofocus: Chromium applies it on a frame
    # after the load event, so typing at once could lose the first keys); Enter submits.
    expect(page.get_by_label("API token")).to_be_focused()
    page.keyboard.type(BOB_TOKEN)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/files")
    # The first Tab reaches the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    # From there, Tab goes to the file picker before the search field.
    page.keyboard.press("Tab")
    expect(page.locator("#file-input")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Name contains")).to_be_focused()
    # Every form field has a label a screen reader can announce.
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select')]
              .filter((el) => !el.labels || el.labels.length === 0).map((el) => el.id)"""
    )
    assert unlabeled == []


def test_revoking_a_token_ends_its_console_sessions(server: Server) -> None:
    token = cli(server.home, "token", "create", "carol", "--name", "console").strip()
    client, _ = _signed_in_client(server.base, token)
    with closing(client):
        assert client.get("/files").status_code == 200
        prefix = hashlib.sha256(token.encode()).hexdigest()[:12]
        assert "revoked 1" in cli(server.home, "token", "revoke", prefix)
        # The API's own token cache keeps a good answer for a few seconds; after it,
        # the session is gone and the page asks to sign in again.
        deadline = time.monotonic() + 15
        while (answer := client.get("/files")).status_code == 200:
            assert time.monotonic() < deadline, "the session outlived its revoked token"
            time.sleep(0.5)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/signin")


def test_bad_input_on_console_pages_gets_a_clear_answer(server: Server) -> None:
    client, _ = _signed_in_client(server.base, BOB_TOKEN)
    with closing(client):
        assert client.get("/files", params={"page": "9" * 40}).status_code == 200
        assert client.get("/files", params={"page": "-3", "sort": "nonsense"}).status_code == 200
        nul = client.get("/files", params={"q": "a\x00b"})
        assert nul.status_code == 400
        assert "NUL" in nul.text
        bogus = client.get("/files", params={"type": "text/html"})
        assert bogus.status_code == 400
        assert "Unknown type filter" in bogus.text
        not_an_id = client.get("/files/not-a-uuid")
        assert not_an_id.status_code == 400
        assert "<h1" in not_an_id.text  # an HTML page, not a JSON body or a traceback
        assert client.get("/maintenance/format-disk").status_code == 403  # bob: not operator


# -- "Copy link": signed links minted from the console -----------------------------------


def _link_from_panel(page: Page, scope: str) -> str:
    field = page.locator(f"{scope} input.link-url")
    expect(field).to_have_value(re.compile(r"^http://127\.0\.0\.1:\d+/links/[0-9a-f]{32}\."))
    expect(page.get_by_label(re.compile("^Link to "))).to_be_focused()
    url = field.input_value()
    # Pre-selected, so Ctrl+C copies it whether or not the clipboard call worked.
    selected = field.evaluate("f => [f.selectionStart, f.selectionEnd]")
    assert selected == [0, len(url)]
    return url


def _expires(page: Page, scope: str) -> float:
    text = page.locator(f"{scope} .link-expires").inner_text()
    return time.mktime(time.strptime(text, "%Y-%m-%d %H:%M UTC")) - time.timezone


def test_copy_link_puts_a_working_link_on_the_clipboard(server: Server, browser: Browser) -> None:
    base = server.base
    data = os.urandom(300_000)
    file_id = api_upload(base, ALICE_TOKEN, "shared-data.bin", data)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = context.new_page()
    try:
        sign_in(page, base, ALICE_TOKEN)
        # From the list: the link appears under the file's row, copied, and it works
        # for anyone: no cookie, no token, the same bytes.
        expect(page.get_by_label("Links made by “Copy link” last")).to_have_value("3600")
        page.get_by_role("button", name="Copy link to shared-data.bin").click()
        status = page.locator("tr.link-row .link-status")
        expect(status).to_have_text("Link copied to the clipboard.")
        url = _link_from_panel(page, "tr.link-row")
        assert page.evaluate("navigator.clipboard.readText()") == url
        assert abs(_expires(page, "tr.link-row") - (time.time() + 3600)) < 120
        shot(page, "18-files-link-copied")
        fetched = httpx.get(url)
        assert fetched.status_code == 200
        assert fetched.content == data
        page.get_by_role("button", name="Close").click()
        expect(page.locator("tr.link-row")).to_have_count(0)
        expect(page.get_by_role("button", name="Copy link to shared-data.bin")).to_be_focused()

        # From the file's page, with a longer lifetime chosen.
        page.goto(f"{base}/files/{file_id}")
        page.get_by_label("Link lasting").select_option(label="1 day")
        page.get_by_role("button", name="Copy link", exact=True).click()
        expect(page.locator("#link-panel .link-status")).to_have_text(
            "Link copied to the clipboard."
        )
        second = _link_from_panel(page, "#link-panel")
        assert second != url
        assert abs(_expires(page, "#link-panel") - (time.time() + 86400)) < 120
        assert httpx.get(second).content == data
        shot(page, "19-file-link-copied")
    finally:
        context.close()


def test_copy_link_without_a_clipboard_shows_the_link_selected(
    server: Server, browser: Browser
) -> None:
    base = server.base
    data = b"handed over by hand\n" * 50
    file_id = api_upload(base, ALICE_TOKEN, "by-hand.txt", data)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # As on plain http to a remote host: no clipboard API at all.
    context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'clipboard', {get: () => undefined})"
    )
    page = context.new_page()
    try:
        sign_in(page, base, ALICE_TOKEN)
        page.goto(f"{base}/files/{file_id}")
        page.get_by_role("button", name="Copy link", exact=True).click()
        expect(page.locator("#link-panel .link-status")).to_contain_text(
            "Copy the selected link with Ctrl+C"
        )
        url = _link_from_panel(page, "#link-panel")
        assert httpx.get(url).content == data
        shot(page, "20-file-link-manual")
    finally:
        context.close()


def test_copy_link_without_javascript_shows_a_link_page(server: Server, browser: Browser) -> None:
    base = server.base
    data = b"no script needed\n"
    api_upload(base, ALICE_TOKEN, "no-script.txt", data)
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, java_script_enabled=False
    )
    page = context.new_page()
    try:
        sign_in(page, base, ALICE_TOKEN)
        # The list's lifetime choice needs the script; without it, it is not shown.
        expect(page.get_by_label("Links made by “Copy link” last")).to_be_hidden()
        page.get_by_role("button", name="Copy link to no-script.txt").click()
        expect(page.get_by_role("heading", name="A link to no-script.txt")).to_be_visible()
        field = page.get_by_role("textbox", name="Link to no-script.txt")
        expect(field).to_be_focused()
        url = field.input_value()
        assert url.startswith(f"{base}/links/")
        assert httpx.get(url).content == data
        shot(page, "21-link-page-without-script")
        page.get_by_label("Another link, lasting").select_option(label="15 minutes")
        page.get_by_role("button", name="Make another link").click()
        again = page.get_by_role("textbox", name="Link to no-script.txt").input_value()
        assert again != url
        assert httpx.get(again).content == data
    finally:
        context.close()


def test_console_links_are_the_owners_and_need_the_csrf_token(server: Server) -> None:
    base = server.base
    secret = b"only alice hands this out\n"
    file_id = api_upload(base, ALICE_TOKEN, "alice-link.txt", secret)
    missing = "00000000-0000-4000-8000-000000000000"
    alice, alice_csrf = _signed_in_client(base, ALICE_TOKEN)
    bob, bob_csrf = _signed_in_client(base, BOB_TOKEN)
    with closing(alice), closing(bob):
        # Bob gets exactly what a file that does not exist gets: as a page and as JSON.
        for headers in ({}, {"Accept": "application/json"}):
            theirs = bob.post(
                f"/files/{file_id}/link",
                data={"csrf_token": bob_csrf, "expires_in": "60"},
                headers=headers,
            )
            nothing = bob.post(
                f"/files/{missing}/link",
                data={"csrf_token": bob_csrf, "expires_in": "60"},
                headers=headers,
            )
            assert theirs.status_code == nothing.status_code == 404
            assert theirs.text.replace(file_id, missing) == nothing.text
            assert "/links/" not in theirs.text
        # Without the page's token, or with a wrong one, nothing is minted.
        for token in (None, "", "forged-" + alice_csrf[:10]):
            data = (
                {"expires_in": "60"} if token is None else {"csrf_token": token, "expires_in": "60"}
            )
            refused = alice.post(f"/files/{file_id}/link", data=data)
            assert refused.status_code == 403
            assert "security token" in refused.text
            assert "/links/" not in refused.text
        as_json = alice.post(
            f"/files/{file_id}/link",
            data={"expires_in": "60"},
            headers={"Accept": "application/json", "X-CSRF-Token": "wrong"},
        )
        assert as_json.status_code == 403
        assert as_json.json()["error"]["type"] == "Requestrefused"
        # The lifetime is held to FILETIER_LINK_MAX_SECONDS by the API's own check.
        too_long = alice.post(
            f"/files/{file_id}/link",
            data={"csrf_token": alice_csrf, "expires_in": str(8 * 24 * 3600)},
            headers={"Accept": "application/json"},
        )
        assert too_long.status_code == 400
        assert "FILETIER_LINK_MAX_SECONDS" in too_long.json()["error"]["message"]
        for nonsense in ("", "soon", "²", "9" * 5000, "-5", "0"):
            bad = alice.post(
                f"/files/{file_id}/link",
                data={"csrf_token": alice_csrf, "expires_in": nonsense},
                headers={"Accept": "application/json"},
            )
            assert bad.status_code == 400, nonsense[:20]
        # With the token: one link, which the API's revocation ends like any other.
        made = alice.post(
            f"/files/{file_id}/link",
            data={"csrf_token": alice_csrf, "expires_in": "60"},
            headers={"Accept": "application/json"},
        )
        assert made.status_code == 201, made.text
        assert made.headers["cache-control"] == "no-store"
        url = made.json()["url"]
        assert httpx.get(url).content == secret
    revoked = httpx.delete(
        f"{base}/v1/files/{file_id}/links", headers={"Authorization": f"Bearer {ALICE_TOKEN}"}
    )
    assert revoked.json() == {"revoked": 1}  # the refused requests minted nothing
    assert httpx.get(url).status_code == 404
