"""Receiving a multipart upload straight into the blob store, in constant memory.

Werkzeug's form parser would spool the file to a temporary file in plaintext first; here the
request body is read in 64 KiB pieces through werkzeug's multipart decoder and each piece goes
to its sink as it arrives. The sink is chosen when the file part starts: plain only if a
`security_level` field below 秘密 came before the file, encrypted otherwise (the level may still
come after the file, and a confidential plaintext byte must never reach the disk).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from flask_babel import gettext as _
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from ..errors import Invalid
from .content import Sniffer
from .storage import Received

READ_SIZE = 1024 * 1024
FIELD_LIMIT = 64 * 1024
MAX_PARTS = 32


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    received: Received | None = None
    file_name: str | None = None
    sniffer: Sniffer = field(default_factory=Sniffer)


def receive(stream: BinaryIO, content_type: str | None, max_file_bytes: int,
            choose_sink: Callable[[dict[str, str]], object], file_field: str = "file") -> Upload:
    mimetype, options = parse_options_header(content_type or "")
    if mimetype != "multipart/form-data" or not options.get("boundary"):
        raise Invalid(_("Send the file as multipart/form-data."), [{"field": file_field, "message": _("missing")}])
    # The decoder's limit bounds its buffer (one piece plus a partial boundary); fields are
    # limited below, as they accumulate.
    decoder = MultipartDecoder(options["boundary"].encode("latin-1"), max_form_memory_size=2 * READ_SIZE,
                               max_parts=MAX_PARTS)
    upload = Upload()
    part: Field | File | None = None
    buffer: list[bytes] = []
    sink = None
    try:
        for data in _pieces(stream):
            decoder.receive_data(data)
            event = decoder.next_event()
            while not isinstance(event, (Epilogue, NeedData)):
                if isinstance(event, Field):
                    part, buffer = event, []
                elif isinstance(event, File):
                    part = event
                    if event.name != file_field or sink is not None or upload.received is not None:
                        raise Invalid(_("Send exactly one file, in the field '%(field)s'.", field=file_field),
                                      [{"field": event.name, "message": _("unexpected file")}])
                    upload.file_name = event.filename
                    sink = choose_sink(upload.fields)
                elif isinstance(event, Data):
                    if isinstance(part, File):
                        if upload.sniffer.size + len(event.data) > max_file_bytes:
                            raise RequestEntityTooLarge()
                        sink.write(event.data)
                        upload.sniffer.feed(event.data)
                        if not event.more_data:
                            upload.received, sink = sink.finish(), None
                    else:
                        buffer.append(event.data)
                        if sum(map(len, buffer)) > FIELD_LIMIT:
                            raise RequestEntityTooLarge()
                        if not event.more_data:
                            if part.name in upload.fields:
                                raise Invalid(_("The field '%(field)s' was sent twice.", field=part.name),
                                              [{"field": part.name, "message": _("sent twice")}])
                            upload.fields[part.name] = b"".join(buffer).decode("utf-8", "replace")
                event = decoder.next_event()
    except BaseException:
        if sink is not None:
            sink.abort()
        if upload.received is not None and upload.received.staged is not None:
            upload.received.staged.unlink(missing_ok=True)
        raise
    return upload


def _pieces(stream: BinaryIO):
    while data := stream.read(READ_SIZE):
        yield data
    yield None
