/**
 * caps, the library: the textbook's UDP and TCP capitalisation servers and
 * clients as Effect services and layers. The CLI (`main.ts`) is built from
 * exactly these modules.
 *
 * Layout (one concept per module):
 * - `UdpServer`, `TcpServer`, `UdpClient`, `TcpClient`: the textbook's four programs.
 * - `TcpListener` (accept loop) and `TcpConnection` (one connection), under `TcpServer`;
 *   `UdpGuard` (loop, amplification and rate guards), under `UdpServer`.
 * - `Transform`: what a server does to a sentence, pluggable.
 * - `LineFramer`, `Utf8`: the pure protocol, framing and decoding, apart from I/O.
 * - `CapsError`: the typed failures; `Endpoint`: how places are named in messages.
 * - `Resolver`: how the clients turn a host name into the addresses they try, replaceable.
 * - `Pinger`: the book's UDP pinger lab, on `UdpClient`; `Options`: options decoded before anything is bound.
 * - `FaultProxy`: `caps proxy`, a UDP and TCP relay that injects faults; `Faults`, its seeded
 *   plan; `ProxyStats`, what it counts; `UdpRelay` (flows) and `TcpRelay` (one connection), under it.
 * - `Health`: the health check, one probe sentence over TCP and one over UDP (`caps check`).
 * - `TlsOptions`: TLS for TCP, its files (`ServerTls`, `ClientTls`) and what a certificate is (`CertificateInfo`);
 *   `Tls` (the files read and checked, the client's certificate check, handshake failures), under both TCP programs.
 * - `SpanAttributes`: what the spans of the four programs say about endpoints, in OpenTelemetry's names; the
 *   CLI's `TraceExport` sends them over OTLP (an embedder provides a `Tracer` of their own).
 * - `LogAnnotations`: the fields the servers' log lines carry (peer, transport, connection, error);
 *   `LogFormat`: the CLI's loggers for them (`--log-format text|json|logfmt`).
 */
export * as CapsError from "./CapsError.ts"
export * as Endpoint from "./Endpoint.ts"
export * as FaultProxy from "./FaultProxy.ts"
export * as Faults from "./Faults.ts"
export * as Health from "./Health.ts"
export * as LineFramer from "./LineFramer.ts"
export * as LogAnnotations from "./LogAnnotations.ts"
export * as LogFormat from "./LogFormat.ts"
export * as Metrics from "./Metrics.ts"
export * as Options from "./Options.ts"
export * as Pinger from "./Pinger.ts"
export * as Protocol from "./Protocol.ts"
export * as Resolver from "./Resolver.ts"
export * as ProxyStats from "./ProxyStats.ts"
export * as TcpClient from "./TcpClient.ts"
export * as TcpServer from "./TcpServer.ts"
export * as TlsOptions from "./TlsOptions.ts"
export * as Transform from "./Transform.ts"
export * as UdpClient from "./UdpClient.ts"
export * as UdpGuard from "./UdpGuard.ts"
export * as UdpServer from "./UdpServer.ts"
export * as Utf8 from "./Utf8.ts"
