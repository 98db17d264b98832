"""Transcripts as Word documents (``.docx``), written directly as an OOXML package.

A ``.docx`` is a zip of a few XML parts (ECMA-376 / ISO/IEC 29500, "transitional"). The
transcript needs only paragraphs, bold runs and three styles, so cvsyncd writes the
parts itself rather than depending on a document library: the result is small, opens
in Word, LibreOffice and Google Docs, and is byte-for-byte the same for the same
transcript (every zip entry carries the same fixed date).
"""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape, quoteattr

from cvsyncd.outbox.render.common import hms
from cvsyncd.outbox.render.transcript import Transcript

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold; any fixed date would do
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

_CONTENT_TYPES = f"""{_XML_HEAD}<Types \
xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/word/document.xml" \
ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>
<Override PartName="/word/styles.xml" \
ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/>
<Override PartName="/docProps/core.xml" \
ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>
<Override PartName="/docProps/app.xml" \
ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>
</Types>
"""

_PACKAGE_RELS = f"""{_XML_HEAD}<Relationships xmlns="{_PKG_REL}">
<Relationship Id="rId1" Type="{_R}/officeDocument" Target="word/document.xml"/>
<Relationship Id="rId2" \
Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" \
Target="docProps/core.xml"/>
<Relationship Id="rId3" Type="{_R}/extended-properties" Target="docProps/app.xml"/>
</Relationships>
"""

_DOCUMENT_RELS = f"""{_XML_HEAD}<Relationships xmlns="{_PKG_REL}">
<Relationship Id="rId1" Type="{_R}/styles" Target="styles.xml"/>
</Relationships>
"""

_APP = f"""{_XML_HEAD}<Properties \
xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">
<Application>cvsyncd</Application>
</Properties>
"""

_STYLES = f"""{_XML_HEAD}<w:styles xmlns:w="{_W}">
<w:docDefaults>
<w:rPrDefault><w:rPr><w:sz w:val="22"/><w:szCs w:val="22"/></w:rPr></w:rPrDefault>
<w:pPrDefault><w:pPr><w:spacing w:after="160" w:line="276" w:lineRule="auto"/></w:pPr>\
</w:pPrDefault>
</w:docDefaults>
<w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/>\
<w:qFormat/></w:style>
<w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/>\
<w:basedOn w:val="Normal"/><w:next w:val="Normal"/><w:qFormat/>\
<w:pPr><w:spacing w:after="320"/></w:pPr><w:rPr><w:sz w:val="48"/><w:szCs w:val="48"/></w:rPr>\
</w:style>
<w:style w:type="paragraph" w:styleId="Speaker"><w:name w:val="Speaker"/>\
<w:basedOn w:val="Normal"/><w:next w:val="Normal"/><w:qFormat/>\
<w:pPr><w:keepNext/><w:spacing w:before="240" w:after="40"/></w:pPr></w:style>
</w:styles>
"""


def _run(text: str, *, bold: bool = False, grey: bool = False) -> str:
    props = ("<w:b/>" if bold else "") + ('<w:color w:val="666666"/>' if grey else "")
    rpr = f"<w:rPr>{props}</w:rPr>" if props else ""
    return f'<w:r>{rpr}<w:t xml:space="preserve">{escape(text)}</w:t></w:r>'


def _paragraph(runs: str, style: str | None = None) -> str:
    ppr = f"<w:pPr><w:pStyle w:val={quoteattr(style)}/></w:pPr>" if style else ""
    return f"<w:p>{ppr}{runs}</w:p>"


def _document(transcript: Transcript, title: str) -> str:
    body = [_paragraph(_run(title), "Title")]
    for paragraph in transcript.paragraphs:
        name = transcript.name(paragraph.speaker)
        heading = (_run(name, bold=True) + _run("  ") if name else "") + _run(
            hms(paragraph.start), grey=True
        )
        body.append(_paragraph(heading, "Speaker"))
        body.append(_paragraph(_run(paragraph.text)))
    # A4 with 2.5 cm margins; Word uses the reader's default when a size is missing, but
    # some readers then show no margins at all
    section = (
        '<w:sectPr><w:pgSz w:w="11906" w:h="16838"/><w:pgMar w:top="1417" w:right="1417" '
        'w:bottom="1417" w:left="1417" w:header="708" w:footer="708" w:gutter="0"/></w:sectPr>'
    )
    return (
        f'{_XML_HEAD}<w:document xmlns:w="{_W}" xmlns:r="{_R}"><w:body>\n'
        + "\n".join(body)
        + f"\n{section}</w:body></w:document>\n"
    )


def _core(title: str) -> str:
    return (
        f"{_XML_HEAD}<cp:coreProperties "
        'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
        f"<dc:title>{escape(title)}</dc:title>\n<dc:creator>cvsyncd</dc:creator>\n"
        "</cp:coreProperties>\n"
    )


def render_docx(transcript: Transcript, title: str) -> bytes:
    """Return a Word document: the title, then each paragraph under its speaker and time."""
    parts = [
        ("[Content_Types].xml", _CONTENT_TYPES),
        ("_rels/.rels", _PACKAGE_RELS),
        ("docProps/core.xml", _core(title)),
        ("docProps/app.xml", _APP),
        ("word/_rels/document.xml.rels", _DOCUMENT_RELS),
        ("word/styles.xml", _STYLES),
        ("word/document.xml", _document(transcript, title)),
    ]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        for name, text in parts:
            info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            package.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()
