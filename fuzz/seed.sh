#!/usr/bin/env bash
# (Re)builds fuzz/corpus/<target>/ from the shared test corpus (../../shared, when present),
# the project's tests/fixtures and fuzz/seeds. The corpora are not committed (.gitignore);
# run this before the first `cargo fuzz run`. Existing corpus entries are kept, so the
# corpus grown by earlier runs survives; pass --clean to start from the seeds only.
set -euo pipefail
cd "$(dirname "$0")"
FUZZ=$PWD
ROOT=$(cd .. && pwd)
SHARED=${SHENBAO_SHARED:-$(cd "$ROOT/.." && pwd)/shared}
# Seeds above this size slow every execution down for little coverage.
MAX_SEED=$((1024 * 1024))

if [[ "${1:-}" == "--clean" ]]; then
    rm -rf corpus
fi
mkdir -p corpus/{subject,message,slim,doc,docx,sheet,attach}

sources=("$ROOT/tests/fixtures")
[[ -d "$SHARED/corpus" ]] && sources+=("$SHARED/corpus")
[[ -d "$SHARED/samples" ]] && sources+=("$SHARED/samples")

# copy <target> <file> [selector byte]: stores the file under its content hash, so re-running
# does not duplicate; with a selector the file is prefixed by it (the `attach` layout; for `slim`,
# 00 is the shortest run length, so every base64 line of 16 letters or more starts a run).
copy() {
    local target=$1 file=$2 sel=${3:-}
    [[ $(stat -c %s "$file") -le $MAX_SEED ]] || return 0
    local tmp
    tmp=$(mktemp)
    if [[ -n "$sel" ]]; then
        { printf "\\x$sel"; cat "$file"; } >"$tmp"
    else
        cp "$file" "$tmp"
    fi
    mv "$tmp" "corpus/$target/seed-$(sha1sum "$tmp" | cut -c1-16)"
}

while IFS= read -r -d '' f; do
    name=${f,,}
    case "$name" in
        *.eml | *.box | *.mbox) copy message "$f"; copy slim "$f" 00 ;;
        *.doc | *.wps) copy doc "$f"; copy docx "$f"; copy attach "$f" 00 ;;
        *.docx | *.docm) copy docx "$f"; copy attach "$f" 01 ;;
        *.xls | *.et) copy sheet "$f"; copy attach "$f" 02 ;;
        *.xlsx | *.xlsm) copy sheet "$f"; copy attach "$f" 03 ;;
        *.zip) copy attach "$f" 04 ;;
        *.tnef | *winmail*.dat) copy attach "$f" 05 ;;
    esac
done < <(find "${sources[@]}" -type f -print0)

# Word 2003 XML: no sample in the fixtures, so a minimal one.
cat >corpus/docx/seed-wordml.xml <<'XML'
<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<?mso-application progid="Word.Document"?>
<w:wordDocument xmlns:w="http://schemas.microsoft.com/office/word/2003/wordml"><w:body>
<w:tbl><w:tr><w:tc><w:p><w:r><w:t>支部名称</w:t></w:r></w:p></w:tc>
<w:tc><w:tcPr><w:gridSpan w:val="2"/></w:tcPr><w:p><w:r><w:t>经济与管理学院本科生第一党支部</w:t></w:r></w:p></w:tc></w:tr>
<w:tr><w:tc><w:tcPr><w:vmerge w:val="restart"/></w:tcPr><w:p><w:r><w:t>申请经费</w:t></w:r></w:p></w:tc>
<w:tc><w:p><w:r><w:t>3000元</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
<w:p><w:r><w:t>项目名称：红色引擎</w:t></w:r></w:p></w:body></w:wordDocument>
XML

# Subjects: one line of seeds/subject.txt per file.
n=0
while IFS= read -r line; do
    [[ -n "$line" ]] || continue
    printf '%s' "$line" >"corpus/subject/seed-$n"
    n=$((n + 1))
done <seeds/subject.txt

for t in subject message slim doc docx sheet attach; do
    printf '%-8s %5d files %8d KB\n' "$t" "$(find "corpus/$t" -type f | wc -l)" \
        "$(du -sk "corpus/$t" | cut -f1)"
done
