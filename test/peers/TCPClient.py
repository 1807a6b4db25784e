# TCPClient.py from Kurose & Ross, "Computer Networking", section 2.7.2.
# Changed from the book only so that tests can point it at a free port:
# the server's host and port come from argv (default 'localhost' and 12000).
# As in the book it sends the sentence without a newline and prints what ONE
# recv(1024) returns.
import sys
from socket import *
serverName = sys.argv[1] if len(sys.argv) > 1 else 'localhost'
serverPort = int(sys.argv[2]) if len(sys.argv) > 2 else 12000
clientSocket = socket(AF_INET, SOCK_STREAM)
clientSocket.connect((serverName,serverPort))
sentence = input('Input lowercase sentence:')
clientSocket.send(sentence.encode())
modifiedSentence = clientSocket.recv(1024)
print('From Server: ', modifiedSentence.decode())
clientSocket.close()
