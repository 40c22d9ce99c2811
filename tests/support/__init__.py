"""Helpers the test modules share; no test module imports another test module.

::

    tests/support/
      http.py         ``filetier serve`` in a child process (LiveServer), an app served
                      from this process (ThreadServer), tokens, upload/assert_error
      mcp.py          an MCP client over streamable HTTP against a served app
      procs/          child scripts the multi-process tests start, and Child/StoreLayout
                      (the parent's side of them)
      web_console.py  the web console driven through Debian's chromium (Playwright)

Services shared with ``reliability/`` and ``bench/`` (PostgreSQL databases, S3 servers,
loopback LLM providers) live one layer down in ``testbed/``.
"""
