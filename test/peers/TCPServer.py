# TCPServer.py from Kurose & Ross, "Computer Networking", section 2.7.2.
# Changed from the book only so that tests can run it on a free port:
# - the host and port come from argv (default '' and 12000, the book's), and
#   port 0 lets the system pick one;
# - after the book's ready message it prints "ready <port>", flushed, so a
#   test learns the port it got.
# As in the book it answers ONE recv(1024) per connection and then closes it.
import sys
from socket import *
serverHost = sys.argv[1] if len(sys.argv) > 1 else ''
serverPort = int(sys.argv[2]) if len(sys.argv) > 2 else 12000
serverSocket = socket(AF_INET,SOCK_STREAM)
serverSocket.bind((serverHost,serverPort))
serverSocket.listen(1)
print('The server is ready to receive')
print('ready', serverSocket.getsockname()[1], flush=True)
while True:
    connectionSocket, addr = serverSocket.accept()
    sentence = connectionSocket.recv(1024).decode()
    capitalizedSentence = sentence.upper()
    connectionSocket.send(capitalizedSentence.encode())
    connectionSocket.close()
