/// The lines of chunked transfer coding (RFC 9112 §7.1), read the same strict way for requests
/// and responses.
enum ChunkedFraming {
    enum SizeLine {
        case needMore
        /// A chunk-size line of `consumed` bytes (its CRLF included) announcing `size` bytes; its
        /// hex digits are the first `digits` bytes (an extension, if any, follows them).
        case line(size: Int64, digits: Int, consumed: Int)
        case malformed
    }

    static let maxLineBytes = 1024

    /// `1*HEXDIG *( ";" token [ "=" token ] ) CRLF`: at most 15 digits; extensions of token
    /// characters only — no whitespace, no quoted values (parsers disagree on both) — the line at
    /// most ``maxLineBytes``.
    static func sizeLine(_ bytes: UnsafeRawBufferPointer) -> SizeLine {
        var i = 0
        var size: Int64 = 0
        while i < bytes.count, let value = hexValue(bytes[i]) {
            guard i < 15 else { return .malformed }
            size = size << 4 | Int64(value)
            i += 1
        }
        let digits = i
        if i == bytes.count { return bytes.count > maxLineBytes ? .malformed : .needMore }
        guard digits > 0 else { return .malformed }
        // Extensions: each `;name` or `;name=value`, names and values non-empty tokens.
        while i < bytes.count, bytes[i] == UInt8(ascii: ";") {
            i += 1
            var name = 0
            while i < bytes.count, HTTPSyntax.isTokenByte(bytes[i]) { i += 1; name += 1 }
            if i == bytes.count { return i > maxLineBytes ? .malformed : .needMore }
            guard name > 0 else { return .malformed }
            if bytes[i] == UInt8(ascii: "=") {
                i += 1
                var value = 0
                while i < bytes.count, HTTPSyntax.isTokenByte(bytes[i]) { i += 1; value += 1 }
                if i == bytes.count { return i > maxLineBytes ? .malformed : .needMore }
                guard value > 0 else { return .malformed }
            }
            if i > maxLineBytes { return .malformed }
        }
        guard bytes[i] == UInt8(ascii: "\r") else { return .malformed }
        guard i + 1 < bytes.count else { return .needMore }
        guard bytes[i + 1] == UInt8(ascii: "\n") else { return .malformed }
        return .line(size: size, digits: digits, consumed: i + 2)
    }

    enum TrailerLine {
        case needMore
        /// A trailer field line of `consumed` bytes.
        case field(consumed: Int)
        /// The empty line that ends the message (2 bytes).
        case end
        case malformed
    }

    /// One line of the trailer section: a field as strict as a header field, or the empty line;
    /// `seen` bytes of trailers came before, and the section may not pass `limit`. A trailer
    /// naming framing (`Transfer-Encoding`, `Content-Length`) is malformed: a parser that merges
    /// trailers into the head would read the message differently.
    static func trailerLine(_ bytes: UnsafeRawBufferPointer, seen: Int, limit: Int) -> TrailerLine {
        var i = 0
        while i < bytes.count, bytes[i] != UInt8(ascii: "\n") {
            if i > 0, bytes[i - 1] == UInt8(ascii: "\r") { return .malformed }
            i += 1
        }
        if i == bytes.count { return seen + bytes.count > limit ? .malformed : .needMore }
        guard i > 0, bytes[i - 1] == UInt8(ascii: "\r") else { return .malformed }
        let consumed = i + 1
        if consumed == 2 { return .end }
        guard seen + consumed <= limit, isField(UnsafeRawBufferPointer(rebasing: bytes[0..<(consumed - 2)])) else { return .malformed }
        return .field(consumed: consumed)
    }

    /// `token ":" value` with no control bytes in the value and no leading whitespace, and not
    /// a framing field.
    static func isField(_ line: UnsafeRawBufferPointer) -> Bool {
        guard let first = line.first, first != 0x20, first != 0x09 else { return false }
        var colon = 0
        while colon < line.count, line[colon] != UInt8(ascii: ":") {
            guard HTTPSyntax.isTokenByte(line[colon]) else { return false }
            colon += 1
        }
        guard colon > 0, colon < line.count else { return false }
        let name = line[0..<colon]
        if name.equalsIgnoringASCIICase("transfer-encoding") || name.equalsIgnoringASCIICase("content-length") { return false }
        return line[(colon + 1)...].allSatisfy(HTTPSyntax.isFieldValueByte)
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}

extension Collection<UInt8> {
    /// ASCII case-insensitive equality with a lower-case `text` (no other folding).
    func equalsIgnoringASCIICase(_ text: StaticString) -> Bool {
        guard count == text.utf8CodeUnitCount else { return false }
        return text.withUTF8Buffer { wanted in
            zip(self, wanted).allSatisfy { (($0 >= 0x41 && $0 <= 0x5A) ? $0 | 0x20 : $0) == $1 }
        }
    }
}
