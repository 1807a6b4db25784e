# UDPServer.py from Kurose & Ross, "Computer Networking", section 2.7.1.
# Changed from the book only so that tests can run it on a free port:
# - the host and port come from argv (default '' and 12000, the book's), and
#   port 0 lets the system pick one;
# - after the book's ready message it prints "ready <port>", flushed, so a
#   test learns the port it got.
import sys
from socket import *
serverHost = sys.argv[1] if len(sys.argv) > 1 else ''
serverPort = int(sys.argv[2]) if len(sys.argv) > 2 else 12000
serverSocket = socket(AF_INET, SOCK_DGRAM)
serverSocket.bind((serverHost, serverPort))
print("The server is ready to receive")
print("ready", serverSocket.getsockname()[1], flush=True)
while True:
    message, clientAddress = serverSocket.recvfrom(2048)
    modifiedMessage = message.decode().upper()
    serverSocket.sendto(modifiedMessage.encode(), clientAddress)
