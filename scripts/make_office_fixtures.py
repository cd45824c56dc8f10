#!/usr/bin/env python3
"""Writes the Office and OpenDocument fixtures in tests/fixtures/office/ (committed;
rerun only to change them). Their text is real text from ../shared/corpus PDFs
(the Zen of Python from google-doc-document.pdf, "The Crazy Ones" from
crazyones-pdfa.pdf) around facts the tests ask about, each on a known page,
slide or sheet.

Needs: pip install python-docx python-pptx openpyxl odfpy xlwt
Usage: python3 scripts/make_office_fixtures.py
"""

import csv
import io
import os
import re
import zipfile

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "office")

ZEN = [
    "Beautiful is better than ugly.", "Explicit is better than implicit.",
    "Simple is better than complex.", "Complex is better than complicated.",
    "Flat is better than nested.", "Sparse is better than dense.", "Readability counts.",
    "Special cases aren't special enough to break the rules.",
    "Although practicality beats purity.", "Errors should never pass silently.",
]
CRAZY = ("Here's to the crazy ones. The misfits. The rebels. The troublemakers. The round pegs in the "
         "square holes. The ones who see things differently. They're not fond of rules. And they have "
         "no respect for the status quo.")

DEPOTS = [("North", "Tromsø", "Ingrid Berg", 1250), ("West", "Bergen", "Ola Nordmann", 980),
          ("East", "Oslo", "Kari Hansen", 2100), ("South", "Kristiansand", "Per Olsen", 640)]


def docx_file():
    from docx import Document
    from docx.enum.text import WD_BREAK
    d = Document()
    d.sections[0].header.paragraphs[0].text = "Nordic Logistics - internal"
    d.sections[0].footer.paragraphs[0].text = "Confidential: do not forward"
    d.add_heading("Quarterly operations report", level=1)
    d.add_paragraph(CRAZY)
    d.add_heading("Principles", level=2)
    for line in ZEN[:4]:
        d.add_paragraph(line, style="List Bullet")
    d.add_paragraph("The night shift at every depot starts at 22:00 and ends at 06:00.")
    d.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    # Page 2: a table long enough to run over the next page when printed.
    d.add_heading("Depots", level=2)
    table = d.add_table(rows=1, cols=4)
    for cell, name in zip(table.rows[0].cells, ["Region", "City", "Manager", "Capacity (pallets)"]):
        cell.text = name
    for i in range(60):
        region, city, manager, capacity = DEPOTS[i % 4] if i < 4 else (f"Zone {i}", f"Town {i}", f"Clerk {i}", 100 + i)
        row = table.add_row().cells
        row[0].text, row[1].text, row[2].text, row[3].text = region, city, manager, str(capacity)
    row = table.add_row().cells
    row[0].text, row[1].text, row[2].text, row[3].text = "Arctic", "Longyearbyen", "Siri Dahl", "75"
    d.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    d.add_heading("Governance", level=2)
    d.add_paragraph(" ".join(ZEN[4:]))
    d.add_paragraph("The audit committee meets on the first Tuesday of each quarter in the Oslo office.")
    d.save(os.path.join(OUT, "report.docx"))


def pptx_file():
    from pptx import Presentation
    from pptx.util import Inches
    p = Presentation()
    s1 = p.slides.add_slide(p.slide_layouts[1])
    s1.shapes.title.text = "Roadmap 2027"
    body = s1.placeholders[1].text_frame
    body.text = ZEN[0]
    body.add_paragraph().text = "The customer portal launches in the second quarter."
    s2 = p.slides.add_slide(p.slide_layouts[5])
    s2.shapes.title.text = "Budget by team"
    rows = [("Team", "Budget (kEUR)", "Lead"), ("Platform", "420", "Mona"), ("Search", "310", "Tariq"),
            ("Mobile", "185", "Lea")]
    table = s2.shapes.add_table(4, 3, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    s3 = p.slides.add_slide(p.slide_layouts[1])
    s3.shapes.title.text = "Offices"
    s3.placeholders[1].text_frame.text = CRAZY
    s3.notes_slide.notes_text_frame.text = "Remind the board that the Lisbon office opens in March 2027."
    s4 = p.slides.add_slide(p.slide_layouts[1])
    s4.shapes.title.text = "Draft slide"
    s4.placeholders[1].text_frame.text = "The merger codename is Bluefin."
    s4._element.set("show", "0")
    p.save(os.path.join(OUT, "deck.pptx"))


def xlsx_file():
    from openpyxl import Workbook
    wb = Workbook()
    summary = wb.active
    summary.title = "Summary"
    summary.append(["Quarter", "Orders", "Returns"])
    for q, orders, returns in [("Q1", 1200, 31), ("Q2", 1350, 27), ("Q3", 1410, 40)]:
        summary.append([q, orders, returns])
    inventory = wb.create_sheet("Inventory")
    inventory.append(["Item", "Unit price", "Units", "Stock value"])
    items = [("Pallet jack", 310, 12), ("Label printer", 129, 40), ("Shrink wrap roll", 18, 300)]
    for i, (item, price, units) in enumerate(items, start=2):
        inventory.append([item, price, units, f"=B{i}*C{i}"])
    secret = wb.create_sheet("Secret")
    secret.append(["Note"])
    secret.append(["The vault code is 4417."])
    secret.sheet_state = "hidden"
    buffer = io.BytesIO()
    wb.save(buffer)
    # openpyxl writes formulas without the values a spreadsheet application saves
    # with them; add those values, as Excel or LibreOffice would have.
    values = {f"D{i}": price * units for i, (_, price, units) in enumerate(items, start=2)}
    write_zip_with(buffer.getvalue(), os.path.join(OUT, "book.xlsx"), "xl/worksheets/sheet2.xml",
                   lambda xml: re.sub(r'<c r="(D\d)"([^>]*)><f>([^<]*)</f><v\s*/?>(</v>)?',
                                      lambda m: f'<c r="{m[1]}"{m[2]}><f>{m[3]}</f><v>{values[m[1]]}</v>', xml))


def write_zip_with(data, path, part, change):
    source = zipfile.ZipFile(io.BytesIO(data))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == part:
                content = change(content.decode()).encode()
            out.writestr(info, content)


def xls_file():
    import xlwt
    wb = xlwt.Workbook()
    sheet = wb.add_sheet("Fleet")
    for r, row in enumerate([("Truck", "Plate", "Driver"), ("Volvo FH16", "EL 40213", "Jonas Lie"),
                             ("Scania R500", "EL 51877", "Amalie Skram")]):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    wb.save(os.path.join(OUT, "fleet.xls"))


def odt_file():
    from odf.opendocument import OpenDocumentText
    from odf.style import ParagraphProperties, Style
    from odf.text import H, List, ListItem, P
    doc = OpenDocumentText()
    breaker = Style(name="PageBreak", family="paragraph")
    breaker.addElement(ParagraphProperties(breakbefore="page"))
    doc.automaticstyles.addElement(breaker)
    doc.text.addElement(H(outlinelevel=1, text="Travel policy"))
    doc.text.addElement(P(text=CRAZY))
    items = List()
    for line in ZEN[:3]:
        item = ListItem()
        item.addElement(P(text=line))
        items.addElement(item)
    doc.text.addElement(items)
    doc.text.addElement(H(outlinelevel=2, text="Per diem", stylename=breaker))
    doc.text.addElement(P(text="The daily allowance for trips abroad is 85 euros."))
    doc.save(os.path.join(OUT, "policy.odt"))


def odp_file():
    from odf.draw import Frame, Page, TextBox
    from odf.opendocument import OpenDocumentPresentation
    from odf.namespaces import PRESENTATIONNS
    from odf.presentation import Notes
    from odf.style import MasterPage, PageLayout
    from odf.text import P
    doc = OpenDocumentPresentation()
    layout = PageLayout(name="PL")
    doc.automaticstyles.addElement(layout)
    master = MasterPage(name="Default", pagelayoutname=layout)
    doc.masterstyles.addElement(master)
    for title, body, note in [("Welcome", ZEN[6], None),
                              ("Security", "Badges must be worn visibly at all times.",
                               "Mention that lost badges are replaced at the front desk within one hour.")]:
        page = Page(masterpagename=master)
        frame = Frame(width="20cm", height="3cm", x="1cm", y="1cm")
        frame.setAttrNS(PRESENTATIONNS, "class", "title")
        box = TextBox()
        box.addElement(P(text=title))
        frame.addElement(box)
        page.addElement(frame)
        frame = Frame(width="20cm", height="10cm", x="1cm", y="5cm")
        box = TextBox()
        box.addElement(P(text=body))
        frame.addElement(box)
        page.addElement(frame)
        if note:
            notes = Notes()
            frame = Frame(width="20cm", height="10cm", x="1cm", y="5cm")
            frame.setAttrNS(PRESENTATIONNS, "class", "notes")
            box = TextBox()
            box.addElement(P(text=note))
            frame.addElement(box)
            notes.addElement(frame)
            page.addElement(notes)
        doc.presentation.addElement(page)
    doc.save(os.path.join(OUT, "briefing.odp"))


def ods_file():
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.style import Style, TableProperties
    from odf.table import Table, TableCell, TableRow
    from odf.text import P
    doc = OpenDocumentSpreadsheet()
    hidden = Style(name="HiddenTable", family="table")
    hidden.addElement(TableProperties(display="false"))
    doc.automaticstyles.addElement(hidden)

    def sheet(name, rows, style=None):
        table = Table(name=name, stylename=style) if style else Table(name=name)
        for row in rows:
            tr = TableRow()
            for value in row:
                if isinstance(value, (int, float)):
                    cell = TableCell(valuetype="float", value=value)
                else:
                    cell = TableCell(valuetype="string")
                cell.addElement(P(text=str(value)))
                tr.addElement(cell)
            table.addElement(tr)
        doc.spreadsheet.addElement(table)

    sheet("Staff", [("Name", "Office", "Phone extension"), ("Nora Vik", "Oslo", 2231), ("Emil Holm", "Bergen", 2274)])
    sheet("Rooms", [("Room", "Seats"), ("Fjord", 12), ("Glacier", 30)])
    sheet("Payroll", [("Name", "Salary"), ("Nora Vik", 99999)], style=hidden)
    doc.save(os.path.join(OUT, "staff.ods"))


def csv_file():
    with open(os.path.join(OUT, "shipments.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Shipment", "Destination", "Weight (kg)", "Carrier"])
        for i in range(1, 41):
            writer.writerow([f"SH-{1000 + i}", ["Hamburg", "Gdansk", "Rotterdam", "Aarhus"][i % 4], 100 + 7 * i,
                             ["DSV", "Maersk", "DB Schenker"][i % 3]])
        writer.writerow(["SH-2001", "Reykjavik, Iceland", 640, "Eimskip"])


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for make in (docx_file, pptx_file, xlsx_file, xls_file, odt_file, odp_file, ods_file, csv_file):
        make()
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(os.path.join(OUT, name)))
