/**
 * The numbers of the textbook's protocol that every program shares: the
 * port both transports use by default, and the largest payload a UDP datagram
 * can carry. They live apart from the programs so that a client does not load
 * a server to learn them.
 */

/** The textbook's port, for UDP and TCP alike. */
export const DEFAULT_PORT = 12000

/** The largest payload a UDP datagram can carry over IPv4 (65,535 less the IP and UDP headers). */
export const MAX_UDP_PAYLOAD = 65_507
