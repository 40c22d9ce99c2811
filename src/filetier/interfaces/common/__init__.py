"""What more than one interface needs and none of them owns: byte ranges (RFC 9110) and
minting download links. It sits below http, mcp and web, so they never import each other
for it.
"""
