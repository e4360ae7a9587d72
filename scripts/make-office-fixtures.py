#!/usr/bin/env python3
"""Builds tests/fixtures/office: extraction cases made with real office software.

Starts from the genuine .docx form and .xlsx summary attached to sample c010
(tests/fixtures/samples/c010/message.eml), changes one thing at a time in the XML
(a spaced label, a synonym, an amount written another way ...), and has LibreOffice
save each variant again as .docx and as legacy .doc / .xls, so the Word 97 and BIFF8
readers are tested on files a real office suite wrote. cases.json lists what each
file must yield. Re-run after changing the cases:

    apt-get install -y --no-install-recommends libreoffice-writer-nogui libreoffice-calc-nogui
    scripts/make-office-fixtures.py
"""
import email, io, json, os, shutil, subprocess, sys, tempfile, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests/fixtures/office")

BASE = {
    "project_name": "“育苗”党团衔接培养工程",
    "section": "育苗成长·薪火相传",
    "leader": "朱语嫣",
    "leader_role": "副书记",
    "phone": "18224039607",
    "advisor": "吴睿婷",
    "budget_yuan": 4000,
}

SECTIONS = "□学思践悟·固本强基　□先锋领航·校园善治　□党旗飘扬·社区聚力　□师生结对·双向赋能　☑育苗成长·薪火相传"

# name -> (edits to word/document.xml text, fields that change)
FORMS = {
    "base": ([], {}),
    "spaced-labels": ([(">项目名称<", ">项 目 名 称<"), (">指导老师<", ">指 导 老 师<"), (">项目负责人<", ">负 责 人<")], {}),
    "synonyms": ([(">指导老师<", ">指导教师<"), (">联系电话<", ">手机<")], {}),
    "amount-comma": ([(">4000<", ">4,000元<")], {}),
    "amount-yen": ([(">4000<", ">￥4000.00<")], {}),
    "amount-wan": ([(">4000<", ">0.4万元<")], {}),
    "amount-capital": ([(">4000<", ">肆仟元整<")], {}),
    "amount-range": ([(">4000<", ">3000-4000元<")], {"budget_yuan": None}),
    "role-long": ([(">副书记<", ">支部副书记<")], {"leader_role": "支部副书记"}),
    "section-checkbox": ([(">育苗成长·薪火相传<", ">" + SECTIONS + "<")], {}),
    "phone-dashes": ([(">18224039607<", ">182-2403-9607<")], {}),
}

SHEETS = {
    "base": ([], {}),
    "amount-text": ([("<t>4000</t>", "<t>4,000元</t>")], {}),
}


def attachments():
    raw = open(os.path.join(ROOT, "tests/fixtures/samples/c010/message.eml"), "rb").read()
    msg = email.message_from_bytes(raw)
    out = {}
    for part in msg.walk():
        name = part.get_filename()
        if name:
            out[os.path.splitext(name)[1]] = part.get_payload(decode=True)
    return out[".docx"], out[".xlsx"]


def patch(data, entry, edits):
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename.endswith(entry):
                text = body.decode("utf-8")
                for old, new in edits:
                    if old not in text:
                        sys.exit(f"{old!r} not in {info.filename}")
                    text = text.replace(old, new)
                body = text.encode("utf-8")
            dst.writestr(info, body)
    return buf.getvalue()


def convert(path, fmt, outdir):
    subprocess.run(["soffice", "--headless", "--convert-to", fmt, "--outdir", outdir, path],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def main():
    docx, xlsx = attachments()
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, variants, entry, data, exts in [
            ("form", FORMS, "word/document.xml", docx, ("docx", "doc")),
            ("summary", SHEETS, "sheet1.xml", xlsx, ("xlsx", "xls")),
        ]:
            for name, (edits, changes) in variants.items():
                src = os.path.join(tmp, f"{kind}-{name}.{exts[0]}")
                open(src, "wb").write(patch(data, entry, edits))
                expect = dict(BASE, **changes)
                for ext in exts:
                    # LibreOffice writes both: the modern file re-saved, and the legacy one.
                    convert(src, ext, OUT)
                    cases.append({"file": f"{kind}-{name}.{ext}", "kind": kind, "expect": expect})
    json.dump(cases, open(os.path.join(OUT, "cases.json"), "w"), ensure_ascii=False, indent=1)
    print(f"{len(cases)} files in {OUT}")


main()
