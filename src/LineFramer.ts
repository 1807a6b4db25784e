/**
 * Splits a byte stream into `\n`-terminated lines, with a bound on line length.
 *
 * Framing works on bytes, not text: the newline byte 0x0A never occurs inside
 * a multi-byte UTF-8 character, so lines can be cut before decoding, and the
 * bound is in bytes, what memory actually holds. One read is never taken as a
 * whole message: a line may arrive in any number of pieces, and one piece may
 * hold many lines.
 */

/** The result of a push: the complete lines (newline removed), or the size of an over-long line. */
export type Framed =
  | { readonly _tag: "Lines"; readonly lines: ReadonlyArray<Uint8Array> }
  | { readonly _tag: "TooLong"; readonly size: number }

const NEWLINE = 0x0a
const EMPTY: ReadonlyArray<Uint8Array> = []

const concat = (pieces: ReadonlyArray<Uint8Array>, total: number): Uint8Array => {
  if (pieces.length === 1) return pieces[0]
  const out = new Uint8Array(total)
  let offset = 0
  for (const piece of pieces) {
    out.set(piece, offset)
    offset += piece.length
  }
  return out
}

/** A line splitter for one connection. */
export class LineFramer {
  readonly maxLineBytes: number
  #pending: Array<Uint8Array> = []
  #pendingBytes = 0

  constructor(maxLineBytes: number) {
    this.maxLineBytes = maxLineBytes
  }

  /** Bytes held for a line that has not ended yet. */
  get pendingBytes(): number {
    return this.#pendingBytes
  }

  /** Adds the next piece of the stream; returns the lines it completes. */
  push(bytes: Uint8Array): Framed {
    let lines: Array<Uint8Array> | undefined
    let start = 0
    for (let at = bytes.indexOf(NEWLINE); at !== -1; at = bytes.indexOf(NEWLINE, start)) {
      const size = this.#pendingBytes + at - start
      if (size > this.maxLineBytes) return { _tag: "TooLong", size }
      const tail = bytes.subarray(start, at)
      const line = this.#pendingBytes === 0 ? tail : concat([...this.#pending, tail], size)
      this.#pending = []
      this.#pendingBytes = 0
      ;(lines ??= []).push(line)
      start = at + 1
    }
    if (start < bytes.length) {
      const rest = bytes.subarray(start)
      const size = this.#pendingBytes + rest.length
      if (size > this.maxLineBytes) return { _tag: "TooLong", size }
      this.#pending.push(rest)
      this.#pendingBytes = size
    }
    return { _tag: "Lines", lines: lines ?? EMPTY }
  }

  /** Ends the stream: the final line that had no newline, if any. */
  end(): Uint8Array | undefined {
    if (this.#pendingBytes === 0) return undefined
    const line = concat(this.#pending, this.#pendingBytes)
    this.#pending = []
    this.#pendingBytes = 0
    return line
  }
}
