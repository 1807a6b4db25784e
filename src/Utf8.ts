/**
 * UTF-8 decoding for byte streams and datagrams.
 *
 * One streaming decoder per connection, so a character split across two
 * reads is decoded whole (decoding each read on its own, as `Socket`'s string
 * helpers do, turns it into U+FFFD). Invalid bytes never throw: each maximal
 * invalid sequence becomes U+FFFD (the WHATWG rule) and is counted, so the
 * server can log it with the peer and go on serving.
 */

/** Whether every byte is below 0x80, i.e. the bytes are ASCII text as they are. */
export const isAscii = (bytes: Uint8Array): boolean => {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] >= 0x80) return false
  return true
}

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

// Conservative: true unless the last character of `bytes` is visibly complete.
const mayEndMidCharacter = (bytes: Uint8Array): boolean => {
  const length = bytes.length
  for (let back = 1; back <= 4 && back <= length; back++) {
    const byte = bytes[length - back]
    if ((byte & 0xc0) === 0x80) continue
    const needed = byte < 0x80
      ? 1
      : (byte & 0xe0) === 0xc0
      ? 2
      : (byte & 0xf0) === 0xe0
      ? 3
      : (byte & 0xf8) === 0xf0
      ? 4
      : 1
    return back < needed
  }
  return length > 0
}

/** Decodes one whole datagram; `malformed` counts the invalid sequences replaced by U+FFFD. */
export const decodeWhole = (bytes: Uint8Array): { readonly text: string; readonly malformed: number } => {
  const text = wholeDecoder.decode(bytes)
  const replaced = countReplacements(text)
  return { text, malformed: replaced === 0 ? 0 : Math.max(0, replaced - countEncodedReplacements(bytes)) }
}
const wholeDecoder = new TextDecoder("utf-8", { ignoreBOM: true })

/** A streaming decoder for one connection. */
export class StreamDecoder {
  readonly #decoder = new TextDecoder("utf-8", { ignoreBOM: true })
  #midCharacter = false
  /** Invalid sequences replaced so far. */
  malformed = 0

  /** True when no partial character is held back, so ASCII bytes may bypass the decoder. */
  get atBoundary(): boolean {
    return !this.#midCharacter
  }

  /** Decodes the next piece of the stream, holding back a trailing partial character. */
  decode(bytes: Uint8Array): string {
    const text = this.#decoder.decode(bytes, { stream: true })
    this.#midCharacter = mayEndMidCharacter(bytes)
    this.#count(text, bytes)
    return text
  }

  /** Ends the stream: a partial character left over is invalid and becomes U+FFFD. */
  end(): string {
    const text = this.#decoder.decode()
    this.#midCharacter = false
    this.#count(text, new Uint8Array(0))
    return text
  }

  #count(text: string, bytes: Uint8Array): void {
    const replaced = countReplacements(text)
    if (replaced !== 0) this.malformed += Math.max(0, replaced - countEncodedReplacements(bytes))
  }
}
