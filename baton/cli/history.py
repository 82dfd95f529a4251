"""`starter.py history`: a run's event history with its payloads readable.

A history as recorded holds every input, result, memo and failure detail as a
payload: base64 of the converter's bytes, and ciphertext when payloads are
encrypted. `readable(history, converter)` (baton/runtime/recovery.py, behind
`BatonClient.readable_history`) decodes each one with the client's data converter and
puts the value in its place. `starter.py history --raw` and `-o FILE` keep the
history as recorded, which is what `replay --file` reads.
"""

from __future__ import annotations

from baton.runtime.recovery import Readable as Readable
from baton.runtime.recovery import readable as readable
