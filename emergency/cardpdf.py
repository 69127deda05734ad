"""The printable wallet card: credit-card size (85.6 × 54 mm, ISO/IEC 7810 ID-1), front
and back, with the scheme's name, its 24-hour number and the PIN — and nothing about
the carer or the person they look after."""

from __future__ import annotations

import io

import phonenumbers
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

CARD_SIZE = (85.6 * mm, 54 * mm)


def _readable(phone: str) -> str:
    """'+448000988234' → '0800 098 8234': the number as people dial it in the UK."""
    try:
        number = phonenumbers.parse(phone, "GB")
    except phonenumbers.NumberParseException:
        return phone
    if not phonenumbers.is_valid_number(number):
        return phone
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def wallet_card_pdf(*, scheme_name: str, line_phone: str, pin: str, is_test: bool = False) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=CARD_SIZE, pageCompression=0)
    pdf.setTitle("Carer's emergency card")
    width, height = CARD_SIZE
    # Front
    pdf.setFillColorRGB(0.8, 0.0, 0.0)
    pdf.rect(0, height - 14 * mm, width, 14 * mm, stroke=0, fill=1)
    pdf.setFillColorRGB(1, 1, 1)
    pdf.setFont("Helvetica-Bold", 10)
    pdf.drawString(4 * mm, height - 9 * mm, "CARER'S EMERGENCY CARD")
    pdf.setFillColorRGB(0, 0, 0)
    pdf.setFont("Helvetica", 7)
    pdf.drawString(4 * mm, height - 19 * mm, scheme_name[:60])
    pdf.setFont("Helvetica", 8)
    pdf.drawString(4 * mm, height - 26 * mm, "In an emergency call (24 hours):")
    pdf.setFont("Helvetica-Bold", 13)
    pdf.drawString(4 * mm, height - 33 * mm, _readable(line_phone))
    pdf.setFont("Helvetica", 8)
    pdf.drawString(4 * mm, 9 * mm, "PIN")
    pdf.setFont("Helvetica-Bold", 14)
    pdf.drawString(12 * mm, 8.5 * mm, f"{pin[:4]} {pin[4:]}")
    if is_test:
        pdf.setFont("Helvetica-Bold", 8)
        pdf.drawRightString(width - 4 * mm, 9 * mm, "TEST CARD")
    pdf.showPage()
    # Back
    pdf.setFont("Helvetica-Bold", 9)
    pdf.drawString(4 * mm, height - 8 * mm, "If I am unwell or hurt:")
    pdf.setFont("Helvetica", 7.5)
    lines = [
        "I look after someone who depends on me.",
        "Please call the number on the front and give",
        "the PIN. The team has my plan and will make",
        "sure the person I care for is looked after.",
        "",
        "This card holds no personal details.",
    ]
    for index, line in enumerate(lines):
        pdf.drawString(4 * mm, height - (14 + index * 4) * mm, line)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
