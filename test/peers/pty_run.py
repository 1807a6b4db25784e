# Runs a command at a real pseudo-terminal, as a person at a terminal would:
#   pty_run.py [--wait-for TEXT] [--timeout SECONDS] [--line LINE]... -- COMMAND [ARG]...
# The terminal has echo and output post-processing turned off, so what this
# prints is exactly the bytes the program wrote (stdout and stderr, which
# share the terminal). Before typing each --line (and a newline) it waits
# until TEXT has appeared once more than the lines typed so far (the
# program's prompt); without --wait-for it types at once. After the last
# line it types end of input (Ctrl-D), reads until the program ends, and
# exits with the program's exit code (128 + signal if killed; 124 after
# --timeout, when the program is killed).
import argparse
import os
import pty
import select
import signal
import sys
import termios
import time

parser = argparse.ArgumentParser()
parser.add_argument("--wait-for", default=None)
parser.add_argument("--timeout", type=float, default=20.0)
parser.add_argument("--line", action="append", default=[])
parser.add_argument("command", nargs=argparse.REMAINDER)
args = parser.parse_args()
command = args.command[1:] if args.command[:1] == ["--"] else args.command
if not command:
    parser.error("no command given")

pid, master = pty.fork()
if pid == 0:
    attributes = termios.tcgetattr(0)
    attributes[1] &= ~termios.OPOST
    attributes[3] &= ~termios.ECHO
    termios.tcsetattr(0, termios.TCSANOW, attributes)
    try:
        os.execvp(command[0], command)
    finally:
        os._exit(127)

deadline = time.monotonic() + args.timeout
output = bytearray()
wait_for = args.wait_for.encode() if args.wait_for is not None else None
to_type = [line.encode() + b"\n" for line in args.line] + [b"\x04"]
typed = 0
open_ = True
timed_out = False

while open_:
    if typed < len(to_type) and (wait_for is None or output.count(wait_for) > typed):
        os.write(master, to_type[typed])
        typed += 1
        continue
    left = deadline - time.monotonic()
    if left <= 0:
        timed_out = True
        break
    ready, _, _ = select.select([master], [], [], min(left, 0.1))
    if ready:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            chunk = b""
        if chunk:
            output += chunk
        else:
            open_ = False

if timed_out:
    os.kill(pid, signal.SIGKILL)
_, status = os.waitpid(pid, 0)
os.close(master)
sys.stdout.buffer.write(bytes(output))
sys.stdout.buffer.flush()
if timed_out:
    sys.stderr.write("pty_run: timed out after %s s; killed\n" % args.timeout)
    sys.exit(124)
if os.WIFSIGNALED(status):
    sys.exit(128 + os.WTERMSIG(status))
sys.exit(os.WEXITSTATUS(status))
