#!/usr/bin/env python3
"""scripts/try-application.py - the application `scripts/try.sh send` mails: one roster branch's.

    scripts/try-application.py ROSTER.csv ADDRESS INTAKE > mail.eml

Takes the real-world sample tests/fixtures/samples/c010 (an Outlook mail with a .docx 申请表 and
an .xlsx 汇总表) and rewrites it for the roster row whose secretary's address is ADDRESS: the
subject, the sender, the body, the attachment names, and the branch and college written inside
the form (word/document.xml, plain UTF-8) and the summary (xl/worksheets/sheet1.xml, where every
non-ASCII character is an XML character reference such as &#28023;). The result is a clean,
complete application of that branch, acknowledged 材料齐全.

Standard library only; runs on Python 3.9 and later (Debian 12 has 3.11).
"""
import csv
import email
import email.policy
import io
import sys
import zipfile
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent.parent / "tests/fixtures/samples/c010/message.eml"
SAMPLE_BRANCH = "海洋与地球科学学院2022级本科生党支部"
SAMPLE_COLLEGE = "海洋与地球科学学院"


def refs(text):
    """The text as the sample's sheet1.xml writes it: non-ASCII characters as &#NNNN;."""
    return "".join(c if ord(c) < 128 else "&#%d;" % ord(c) for c in text)


def rewrite_zip(data, replacements):
    """The .docx/.xlsx with every XML part's text replaced, both spelled out and as references."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename.endswith(".xml"):
                text = body.decode("utf-8")
                for old, new in replacements:
                    text = text.replace(old, new).replace(refs(old), refs(new))
                body = text.encode("utf-8")
            dst.writestr(info, body, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def main():
    if len(sys.argv) != 4:
        sys.exit("用法：scripts/try-application.py 名册.csv 书记邮箱 申报邮箱")
    roster, address, intake = sys.argv[1:]
    with open(roster, encoding="utf-8-sig", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("书记邮箱", "").strip().lower() == address.lower()]
    if not rows:
        sys.exit("名册 %s 中没有书记邮箱为 %s 的支部：请换一个名册中的邮箱" % (roster, address))
    row = rows[0]
    branch, college, secretary = row["支部名称"].strip(), row["学院"].strip(), row["书记"].strip()
    # The branch first: the sample's branch name contains its college's.
    replacements = [(SAMPLE_BRANCH, branch), (SAMPLE_COLLEGE, college)]

    sample = email.message_from_bytes(SAMPLE.read_bytes(), policy=email.policy.default)
    msg = EmailMessage()
    msg["From"] = formataddr((secretary, address))
    msg["To"] = formataddr(("党委学生工作部", intake))
    msg["Subject"] = "对标争先建设项目申报-" + branch
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid("try", address.split("@")[-1])
    msg.set_content(
        "老师好！\n\n附件是%s“对标争先”建设项目的申报材料（项目申请表和申报汇总表），请您查收。\n\n"
        "辛苦老师！\n\n%s\n%s\n" % (branch, branch, secretary)
    )
    for part in sample.iter_attachments():
        name = part.get_filename()
        for old, new in replacements:
            name = name.replace(old, new)
        maintype, subtype = part.get_content_type().split("/")
        data = rewrite_zip(part.get_payload(decode=True), replacements)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    sys.stdout.buffer.write(msg.as_bytes(policy=email.policy.SMTP))


if __name__ == "__main__":
    main()
