"""What the tests, the reliability suites and the benchmarks run filetier against.

::

    testbed/
      services.py         the machine's real services: a fresh PostgreSQL database per
                          caller, moto's S3 server, Ceph RGW, the real Supabase Storage
      provider_server.py  a loopback OpenAI-compatible files API (Kimi, GLM, OpenAI) that
                          can be told to fail, and its control client for other processes
      provider_servers/   loopback Gemini, Anthropic and Mistral files APIs

The three users import this package; it imports none of them (only ``filetier`` and
third-party libraries), so every arrow points down::

    tests/  ->  tests/support/  ->  reliability/  ->  testbed/  ->  filetier
    bench/  ------------------------^

``tests/test_imports_point_down.py`` checks it.
"""
