// caps's servers as the tests run them: on 127.0.0.1 and a free port, with the
// `upper` transform unless a test says otherwise.
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { InvalidOption } from "../../src/CapsError.ts"
import * as TcpServer from "../../src/TcpServer.ts"
import * as Transform from "../../src/Transform.ts"
import * as UdpServer from "../../src/UdpServer.ts"

type AnyTransform = Transform.TransformShape | Effect.Effect<Transform.TransformShape, InvalidOption>

/** A server's counters now, for the synchronous predicates of `waitUntil`. */
export const statsOf = <S>(server: { readonly stats: Effect.Effect<S> }): S => Effect.runSync(server.stats)

/** A TCP server layer on 127.0.0.1 and a free port. */
export const tcpServer = (options: TcpServer.TcpServerOptions = {}, transform: AnyTransform = Transform.upper) =>
  TcpServer.layer({ host: "127.0.0.1", port: 0, ...options }).pipe(Layer.provide(Transform.layer(transform)))

/** A UDP server layer on 127.0.0.1 and a free port. */
export const udpServer = (options: UdpServer.UdpServerOptions = {}, transform: AnyTransform = Transform.upper) =>
  UdpServer.layer({ host: "127.0.0.1", port: 0, ...options }).pipe(Layer.provide(Transform.layer(transform)))

/** Runs `test` against a TCP server that lives as long as the test. */
export const withTcpServer = <A, E, R>(
  test: (server: TcpServer.TcpServer["Service"]) => Effect.Effect<A, E, R>,
  options: TcpServer.TcpServerOptions = {},
  transform: AnyTransform = Transform.upper,
) => TcpServer.TcpServer.use(test).pipe(Effect.provide(tcpServer(options, transform)))

/** Runs `test` against a UDP server that lives as long as the test. */
export const withUdpServer = <A, E, R>(
  test: (server: UdpServer.UdpServer["Service"]) => Effect.Effect<A, E, R>,
  options: UdpServer.UdpServerOptions = {},
  transform: AnyTransform = Transform.upper,
) => UdpServer.UdpServer.use(test).pipe(Effect.provide(udpServer(options, transform)))
