// The typed errors on their own: each errno a bind or a connection can fail with maps to its own
// error (and anything else to a NetworkError that keeps the errno, the text and the platform's error),
// the errno is found through `cause` chains up to five deep, and every error's one-line message names
// what failed and where, exactly as the CLI prints it.
import { assert, describe, it } from "@effect/vitest"
import * as CapsError from "../src/CapsError.ts"
import * as Endpoint from "../src/Endpoint.ts"

const udp = Endpoint.make("127.0.0.1", 12000, "udp")
const tcp = Endpoint.make("::1", 12000, "tcp")

/** An error as Node raises it: an Error with an errno name in `code`. */
const systemError = (code: string, message = `${code} happened`) => Object.assign(new Error(message), { code })

describe("CapsError.errno", () => {
  it("reads the errno name of an error, or of its causes up to five deep", () => {
    assert.strictEqual(CapsError.errno(systemError("EADDRINUSE")), "EADDRINUSE")
    assert.strictEqual(CapsError.errno({ code: "EPIPE" }), "EPIPE")
    let nested: unknown = { code: "ECONNRESET" }
    for (let i = 0; i < 4; i++) nested = { cause: nested }
    assert.strictEqual(CapsError.errno(nested), "ECONNRESET", "at depth 4, the fifth error looked at")
    assert.strictEqual(CapsError.errno({ cause: nested }), undefined, "at depth 5, beyond the limit")
  })

  it("takes the first string code on the way down, skipping codes that are not names", () => {
    assert.strictEqual(CapsError.errno({ code: "EPERM", cause: { code: "EACCES" } }), "EPERM")
    assert.strictEqual(CapsError.errno({ code: -13, cause: { code: "EACCES" } }), "EACCES")
    assert.strictEqual(CapsError.errno(new Error("wrapped", { cause: systemError("ENETDOWN") })), "ENETDOWN")
  })

  it("is undefined for values that carry no errno", () => {
    for (const value of [undefined, null, "EADDRINUSE", 98, new Error("plain"), { code: 98 }, { cause: null }]) {
      assert.strictEqual(CapsError.errno(value), undefined, String(value))
    }
  })
})

describe("CapsError.fromBindFailure", () => {
  it("maps each errno a bind fails with to its error, keeping the endpoint", () => {
    const cases: Array<[string, string]> = [
      ["EADDRINUSE", "AddressInUse"],
      ["EADDRNOTAVAIL", "AddressNotAvailable"],
      ["EAFNOSUPPORT", "AddressNotAvailable"],
      ["EINVAL", "AddressNotAvailable"], // Deno's node:net, for an address this host lacks
      ["EACCES", "PermissionDenied"],
      ["EPERM", "PermissionDenied"],
    ]
    for (const [code, tag] of cases) {
      const error = CapsError.fromBindFailure(systemError(code), udp)
      assert.strictEqual(error._tag, tag, code)
      assert.deepStrictEqual(error.endpoint, udp, code)
    }
  })

  it("keeps any other failure as a bind NetworkError with its errno, its text and the error itself", () => {
    const cause = systemError("EMFILE", "too many open files")
    const error = CapsError.fromBindFailure(cause, tcp)
    assert.strictEqual(error._tag, "NetworkError")
    if (error._tag !== "NetworkError") return
    assert.strictEqual(error.operation, "bind")
    assert.strictEqual(error.code, "EMFILE")
    assert.strictEqual(error.detail, "too many open files")
    assert.strictEqual(error.cause, cause)
    assert.strictEqual(error.message, "bind [::1]:12000/tcp failed: too many open files (EMFILE)")
  })

  it("names a failure without an errno EUNKNOWN, and describes a thrown non-Error by its text", () => {
    const error = CapsError.fromBindFailure("socket exploded", udp)
    assert.strictEqual(error._tag, "NetworkError")
    if (error._tag !== "NetworkError") return
    assert.strictEqual(error.code, "EUNKNOWN")
    assert.strictEqual(error.detail, "socket exploded")
    assert.strictEqual(error.message, "bind 127.0.0.1:12000/udp failed: socket exploded (EUNKNOWN)")
  })
})

describe("CapsError.fromConnectFailure", () => {
  it("maps each errno reaching a server fails with to its error, keeping the endpoint", () => {
    const cases: Array<[string, string]> = [
      ["ECONNREFUSED", "ConnectionRefused"],
      ["EHOSTUNREACH", "Unreachable"],
      ["ENETUNREACH", "Unreachable"],
      ["EHOSTDOWN", "Unreachable"],
      ["ENETDOWN", "Unreachable"],
      ["EACCES", "PermissionDenied"],
      ["EPERM", "PermissionDenied"],
      ["ECONNRESET", "ConnectionClosed"],
      ["EPIPE", "ConnectionClosed"],
    ]
    for (const [code, tag] of cases) {
      const error = CapsError.fromConnectFailure(systemError(code), tcp)
      assert.strictEqual(error._tag, tag, code)
      assert.deepStrictEqual(error.endpoint, tcp, code)
    }
  })

  it("says which errno made a host unreachable, and that a reset or broken pipe is a reset", () => {
    const unreachable = CapsError.fromConnectFailure(systemError("EHOSTDOWN"), tcp)
    assert.strictEqual(unreachable._tag === "Unreachable" && unreachable.code, "EHOSTDOWN")
    for (const code of ["ECONNRESET", "EPIPE"]) {
      const closed = CapsError.fromConnectFailure(systemError(code), tcp)
      assert.strictEqual(closed._tag === "ConnectionClosed" && closed.kind, "Reset", code)
    }
  })

  it("keeps any other failure as a NetworkError of the operation that failed, connect by default", () => {
    const cause = systemError("ETIMEDOUT", "timed out")
    const connect = CapsError.fromConnectFailure(cause, tcp)
    assert.strictEqual(connect._tag === "NetworkError" && connect.operation, "connect")
    assert.strictEqual(connect._tag === "NetworkError" && connect.cause, cause)
    for (const operation of ["send", "receive"] as const) {
      const error = CapsError.fromConnectFailure(cause, udp, operation)
      assert.strictEqual(error._tag, "NetworkError")
      assert.strictEqual(error.message, `${operation} 127.0.0.1:12000/udp failed: timed out (ETIMEDOUT)`)
    }
  })
})

describe("CapsError.socketCause", () => {
  it("is the platform's error under an effect/socket error's reason, or the error itself", () => {
    const platform = systemError("ECONNRESET")
    assert.strictEqual(CapsError.socketCause({ reason: { _tag: "ReadError", cause: platform } }), platform)
    const bare = { reason: { _tag: "Closed" } }
    assert.strictEqual(CapsError.socketCause(bare), bare)
  })
})

describe("CapsError fields", () => {
  it("are checked when an error is made: an endpoint must have a host, a numeric port and a transport", () => {
    const made = (endpoint: unknown) => () => new CapsError.ConnectionRefused({ endpoint } as never)
    assert.doesNotThrow(made({ host: "::1", port: 1, transport: "tcp" }))
    assert.throws(made({ host: "::1", port: "1", transport: "tcp" }))
    assert.throws(made({ host: 1, port: 1, transport: "tcp" }))
    assert.throws(made({ host: "::1", port: 1, transport: "sctp" }))
    assert.throws(made({ host: "::1", port: 1 }))
  })
})

describe("CapsError messages", () => {
  it("name what failed and where, one line each", () => {
    const cases: Array<[CapsError.CapsError, string, string]> = [
      [
        new CapsError.NameNotResolved({ host: "nowhere.invalid", code: "ENOTFOUND" }),
        "NameNotResolved",
        `cannot resolve host name "nowhere.invalid" (ENOTFOUND)`,
      ],
      [
        new CapsError.ConnectionRefused({ endpoint: tcp }),
        "ConnectionRefused",
        "connection refused by [::1]:12000/tcp",
      ],
      [
        new CapsError.ConnectionRefused({ endpoint: udp }),
        "ConnectionRefused",
        "port unreachable: 127.0.0.1:12000/udp answered that nothing listens there",
      ],
      [
        new CapsError.Unreachable({ endpoint: udp, code: "ENETUNREACH" }),
        "Unreachable",
        "cannot reach 127.0.0.1:12000/udp (ENETUNREACH)",
      ],
      [new CapsError.AddressInUse({ endpoint: udp }), "AddressInUse", "address already in use: 127.0.0.1:12000/udp"],
      [
        new CapsError.AddressNotAvailable({ endpoint: tcp }),
        "AddressNotAvailable",
        "address not available on this host: [::1]:12000/tcp",
      ],
      [
        new CapsError.MessageTooLarge({ transport: "udp", size: 70000, limit: 65507 }),
        "MessageTooLarge",
        "UDP datagram of 70000 bytes exceeds the limit of 65507 bytes",
      ],
      [
        new CapsError.MessageTooLarge({ transport: "udp", size: 2049, limit: 2048, atLeast: true }),
        "MessageTooLarge",
        "UDP datagram of at least 2049 bytes exceeds the limit of 2048 bytes",
      ],
      [
        new CapsError.MessageTooLarge({ transport: "tcp", size: 65537, limit: 65536 }),
        "MessageTooLarge",
        "TCP line of 65537 bytes exceeds the limit of 65536 bytes",
      ],
      [
        new CapsError.ConnectionClosed({ endpoint: tcp, kind: "Reset" }),
        "ConnectionClosed",
        "connection to [::1]:12000/tcp was reset mid-reply",
      ],
      [
        new CapsError.ConnectionClosed({ endpoint: tcp, kind: "Closed" }),
        "ConnectionClosed",
        "connection to [::1]:12000/tcp closed before a reply arrived",
      ],
      [
        new CapsError.MalformedInput({ detail: "a line break inside a sentence" }),
        "MalformedInput",
        "malformed input: a line break inside a sentence",
      ],
      [
        new CapsError.ProtocolViolation({ endpoint: tcp, detail: "two lines for one sentence" }),
        "ProtocolViolation",
        "protocol violation by [::1]:12000/tcp: two lines for one sentence",
      ],
      [
        new CapsError.InvalidOption({ option: "TcpServer.port", detail: "expected an integer" }),
        "InvalidOption",
        "invalid option TcpServer.port: expected an integer",
      ],
      [
        new CapsError.NetworkError({ endpoint: udp, operation: "send", code: "ENOBUFS", detail: "no buffer space" }),
        "NetworkError",
        "send 127.0.0.1:12000/udp failed: no buffer space (ENOBUFS)",
      ],
    ]
    for (const [error, tag, message] of cases) {
      assert.strictEqual(error._tag, tag)
      assert.strictEqual(error.message, message)
    }
  })

  it("counts a timeout's attempts and spells whole seconds as seconds, anything else in milliseconds", () => {
    const timeout = (attempts: number, attemptMillis: number) =>
      new CapsError.Timeout({ endpoint: udp, attempts, attemptMillis }).message
    assert.strictEqual(timeout(1, 5000), "no answer from 127.0.0.1:12000/udp after 1 attempt of 5 s")
    assert.strictEqual(timeout(3, 1000), "no answer from 127.0.0.1:12000/udp after 3 attempts of 1 s")
    assert.strictEqual(timeout(2, 1500), "no answer from 127.0.0.1:12000/udp after 2 attempts of 1500 ms")
    assert.strictEqual(timeout(1, 250), "no answer from 127.0.0.1:12000/udp after 1 attempt of 250 ms")
    assert.strictEqual(new CapsError.Timeout({ endpoint: udp, attempts: 1, attemptMillis: 1 })._tag, "Timeout")
  })

  it("hints at privileges for a denied port from 1 to 1023 only", () => {
    const denied = (port: number) =>
      new CapsError.PermissionDenied({ endpoint: Endpoint.make("0.0.0.0", port, "udp") }).message
    const hint = " (ports below 1024 need privileges)"
    assert.strictEqual(denied(80), `permission denied for 0.0.0.0:80/udp${hint}`)
    assert.strictEqual(denied(1), `permission denied for 0.0.0.0:1/udp${hint}`)
    assert.strictEqual(denied(1023), `permission denied for 0.0.0.0:1023/udp${hint}`)
    assert.strictEqual(denied(1024), "permission denied for 0.0.0.0:1024/udp")
    assert.strictEqual(denied(0), "permission denied for 0.0.0.0:0/udp")
    assert.strictEqual(new CapsError.PermissionDenied({ endpoint: udp })._tag, "PermissionDenied")
  })
})
