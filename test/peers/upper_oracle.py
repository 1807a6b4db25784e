# The oracle for caps's `upper`: Python's own str.upper(), the textbook
# server's transform. Reads JSON lines (one string each) on stdin and writes,
# per line, JSON [upper, known]: `known` is false when the string holds a
# character unassigned in this Python's Unicode database (its version can
# lag the JavaScript engine's), so the caller compares only known strings.
import json
import sys
import unicodedata

for line in sys.stdin:
    text = json.loads(line)
    known = all(unicodedata.category(c) != "Cn" for c in text)
    print(json.dumps([text.upper(), known]), flush=True)
