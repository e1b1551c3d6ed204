"""The browser example of docs/plugin-authors.md, shown there as it is here (``same-as``)."""

import functools
import http.server
import threading


def test_a_page_as_a_person_sees_it(cosmobac_browser, tmp_path):
    page = '<link rel="icon" href="data:,"><h1 id="total">42</h1><script>window.ready = 1</script>'
    (tmp_path / "index.html").write_text(page)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=tmp_path)
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        cosmobac_browser.get(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        cosmobac_browser.wait_for_js("return window.ready === 1", timeout=10)
        assert cosmobac_browser.texts("#total") == ["42"]
        print(cosmobac_browser.screenshot("index", full_page=True))
        server.shutdown()
    assert cosmobac_browser.console_errors() == []
    assert cosmobac_browser.requests_off_loopback() == []
