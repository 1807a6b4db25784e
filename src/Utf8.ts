/**
 * UTF-8 decoding for byte streams and datagrams.
 *
 * Most traffic is plain ASCII, whose bytes are already their text: it is
 * checked and sliced by the runtime's native code, with no decoder involved.
 *
 * One streaming decoder per connection, so a character split across two
 * reads is decoded whole (decoding each read on its own, as `Socket`'s string
 * helpers do, turns it into U+FFFD). Invalid bytes never throw: each maximal
 * invalid sequence becomes U+FFFD (the WHATWG rule) and is counted, so the
 * server can log it with the peer and go on serving.
 */
import { Buffer, isAscii as nativeIsAscii } from "node:buffer"

/** Whether every byte is below 0x80, i.e. the bytes are ASCII text as they are. */
export const isAscii = (bytes: Uint8Array): boolean => nativeIsAscii(bytes)

const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

// Only for ASCII bytes, where Latin-1 and UTF-8 agree: a native copy into a one-byte string.
const asciiText = (bytes: Uint8Array): string => asBuffer(bytes).toString("latin1")

const REPLACEMENT = "\uFFFD"

const countReplacements = (text: string): number => {
  let n = 0
  for (let at = text.indexOf(REPLACEMENT); at !== -1; at = text.indexOf(REPLACEMENT, at + 1)) n++
  return n
}

// U+FFFD itself arrives as EF BF BD; only replacements beyond those mark invalid input.
const countEncodedReplacements = (bytes: Uint8Array): number => {
  let n = 0
  for (let i = 0; i + 2 < bytes.length; i++) {
    if (bytes[i] === 0xef && bytes[i + 1] === 0xbf && bytes[i + 2] === 0xbd) n++
  }
  return n
}

/** Invalid sequences behind the U+FFFD in `text`, decoded from `bytes` (real U+FFFD characters not counted). */
const invalidSequences = (text: string, bytes: Uint8Array): number => {
  const replaced = countReplacements(text)
  return replaced === 0 ? 0 : Math.max(0, replaced - countEncodedReplacements(bytes))
}

const sequenceLength = (lead: number): number =>
  lead < 0x80 ? 1 : (lead & 0xe0) === 0xc0 ? 2 : (lead & 0xf0) === 0xe0 ? 3 : (lead & 0xf8) === 0xf0 ? 4 : 1

// How many continuation bytes the decoder still waits for after `bytes`, given how many it waited for
// before. Only the tail matters: the last lead byte within four bytes of the end decides.
const stillNeeded = (bytes: Uint8Array, before: number): number => {
  const length = bytes.length
  for (let back = 1; back <= 4 && back <= length; back++) {
    const byte = bytes[length - back]
    if ((byte & 0xc0) !== 0x80) return Math.max(0, sequenceLength(byte) - back)
  }
  return length >= 4 ? 0 : Math.max(0, before - length)
}

/** What `decodeWhole` makes of some bytes. */
export interface Decoded {
  readonly text: string
  /** Invalid sequences replaced by U+FFFD. */
  readonly malformed: number
  /** Whether the bytes were ASCII, so that the text is as long as they are. */
  readonly ascii: boolean
}

/** Decodes one whole datagram or line. */
export const decodeWhole = (bytes: Uint8Array): Decoded => {
  if (isAscii(bytes)) return { text: asciiText(bytes), malformed: 0, ascii: true }
  const text = wholeDecoder.decode(bytes)
  return { text, malformed: invalidSequences(text, bytes), ascii: false }
}
const wholeDecoder = new TextDecoder("utf-8", { ignoreBOM: true })

/** A streaming decoder for one connection. */
export class StreamDecoder {
  readonly #decoder = new TextDecoder("utf-8", { ignoreBOM: true })
  #needed = 0
  /** Invalid sequences replaced so far. */
  malformed = 0
  /** Whether the last piece was ASCII, decoded as it is (no partial character before it). */
  ascii = false

  /** True when no partial character is held back, so ASCII bytes may bypass the decoder. */
  get atBoundary(): boolean {
    return this.#needed === 0
  }

  /** Decodes the next piece of the stream, holding back a trailing partial character. */
  decode(bytes: Uint8Array): string {
    this.ascii = this.#needed === 0 && isAscii(bytes)
    if (this.ascii) return asciiText(bytes)
    const text = this.#decoder.decode(bytes, { stream: true })
    this.#needed = stillNeeded(bytes, this.#needed)
    this.malformed += invalidSequences(text, bytes)
    return text
  }

  /** Ends the stream: a partial character left over is invalid and becomes U+FFFD. */
  end(): string {
    const text = this.#decoder.decode()
    this.#needed = 0
    this.malformed += invalidSequences(text, new Uint8Array(0))
    return text
  }
}
