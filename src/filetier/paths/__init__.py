"""Where a download may be written, and how to write it there without being redirected.

``download_file(file_id, destination)`` takes a destination from a caller we do not fully
trust (an LLM agent, an MCP client, a CLI user), so this package answers two questions:

1. **Is the destination allowed?** :class:`AllowedRoots` turns a destination into a
   :class:`SafeDestination` strictly inside one of the configured roots, or raises
   :class:`~filetier.errors.PathNotAllowedError`. Containment is decided on resolved
   paths and compared component by component, never by string prefix: the MCP filesystem
   server lost exactly that fight twice (CVE-2025-53110: ``/data-evil`` "starts with"
   ``/data``; CVE-2025-53109: a symlink planted inside the root points outside it).
   ``..`` is refused outright rather than normalised away, because a path that climbs out
   and back in is almost always a mistake or a probe, and refusing it is easier to explain.

2. **Does the write land where we checked?** Between the check and the write another
   process can swap a directory for a symlink (TOCTOU). :class:`SafeDestination` therefore
   never writes through a path string: it walks from the root with directory file
   descriptors, opening each component with ``O_NOFOLLOW``, writes a temporary file with
   ``O_EXCL | O_NOFOLLOW`` inside the final directory fd, and publishes it with a
   ``rename`` relative to that same fd. Renaming also means an existing destination is
   *replaced*, never written into, so a hard link or symlink planted at the final name can
   not carry our bytes somewhere else.

3. **May an existing file be replaced?** Only when the caller asks (``overwrite=True``).
   Otherwise the temp file is published with ``link``, which fails if the name exists,
   so no check-then-write race can clobber a file that appears meanwhile: the same bytes
   already there are a no-op success, different bytes are
   :class:`~filetier.errors.DestinationExistsError`.

The directory-fd calls (``dir_fd=``, ``O_NOFOLLOW``, ``O_DIRECTORY``) are POSIX-only, as is
filetier's download path. :func:`safe_filename` is portable and also avoids names Windows
would refuse, because downloaded files are often copied to other machines.
"""

from filetier.paths.destination import SafeDestination
from filetier.paths.names import NAME_MAX_BYTES, owner_folder, safe_filename
from filetier.paths.roots import AllowedRoots

__all__ = ["NAME_MAX_BYTES", "AllowedRoots", "SafeDestination", "owner_folder", "safe_filename"]
