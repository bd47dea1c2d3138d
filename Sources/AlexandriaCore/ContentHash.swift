import Crypto

/// A SHA-256 digest: the name of every byte in Alexandria.
///
/// A file's address is the SHA-256 of its whole content, written `sha256:<64 lowercase hex>`; that is the value
/// `sha256sum`, a Hugging Face LFS oid and an OCI blob digest carry, so users can fetch by a hash they already have.
/// A chunk's id is the SHA-256 of the chunk's bytes, written the same way.
///
/// Stored as four big-endian words so it hashes and compares without allocation.
public struct ContentHash: Hashable, Sendable, Comparable, CustomStringConvertible {
    public static let byteCount = 32
    /// The textual prefix of an address.
    public static let prefix = "sha256:"

    @usableFromInline var w0: UInt64
    @usableFromInline var w1: UInt64
    @usableFromInline var w2: UInt64
    @usableFromInline var w3: UInt64

    /// Creates a hash from exactly 32 bytes; returns nil for any other count.
    public init?<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        guard bytes.count == Self.byteCount else { return nil }
        var words: [UInt64] = [0, 0, 0, 0]
        for (i, byte) in bytes.enumerated() {
            words[i / 8] = words[i / 8] << 8 | UInt64(byte)
        }
        (w0, w1, w2, w3) = (words[0], words[1], words[2], words[3])
    }

    /// Creates a hash from 32 bytes at `pointer`.
    public init(pointer: UnsafeRawPointer) {
        func word(_ offset: Int) -> UInt64 {
            UInt64(bigEndian: pointer.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        (w0, w1, w2, w3) = (word(0), word(8), word(16), word(24))
    }

    public init(_ digest: SHA256.Digest) {
        self = digest.withUnsafeBytes { ContentHash(pointer: $0.baseAddress!) }
    }

    /// The SHA-256 of `bytes`.
    public static func of(_ bytes: UnsafeRawBufferPointer) -> ContentHash {
        ContentHash(SHA256.hash(data: bytes))
    }

    /// The SHA-256 of `bytes`.
    public static func of<Bytes: Sequence>(_ bytes: Bytes) -> ContentHash where Bytes.Element == UInt8 {
        var hasher = SHA256()
        let array = Array(bytes)
        array.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return ContentHash(hasher.finalize())
    }

    /// The 32 digest bytes.
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(32)
        for word in [w0, w1, w2, w3] {
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
            }
        }
        return out
    }

    /// The digest as the 256-bit big-endian integer its bytes spell, in four 64-bit words, most significant first.
    public var words: (UInt64, UInt64, UInt64, UInt64) { (w0, w1, w2, w3) }

    /// Writes the 32 digest bytes at `pointer`.
    public func write(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: w0.bigEndian, toByteOffset: 0, as: UInt64.self)
        pointer.storeBytes(of: w1.bigEndian, toByteOffset: 8, as: UInt64.self)
        pointer.storeBytes(of: w2.bigEndian, toByteOffset: 16, as: UInt64.self)
        pointer.storeBytes(of: w3.bigEndian, toByteOffset: 24, as: UInt64.self)
    }

    /// 64 lowercase hex digits.
    public var hex: String { Hex.encode(bytes) }

    /// `sha256:` followed by 64 lowercase hex digits.
    public var description: String { Self.prefix + hex }

    /// Parses the canonical form: `sha256:` and exactly 64 lowercase hex digits. Anything else is nil.
    ///
    /// This is the strict form used for bytes that come off the wire or out of a manifest.
    public init?(canonical text: Substring) {
        guard text.hasPrefix(Self.prefix) else { return nil }
        let hexPart = text.dropFirst(Self.prefix.count)
        guard hexPart.utf8.count == 64, hexPart.utf8.allSatisfy({ Hex.isLowerHexDigit($0) }),
            let bytes = Hex.decode(hexPart)
        else { return nil }
        self.init(bytes: bytes)
    }

    public init?(canonical text: String) { self.init(canonical: Substring(text)) }

    /// Parses what a user types: `sha256:HEX` or bare `HEX` (a Hugging Face LFS oid, `sha256sum` output),
    /// upper or lower case. Surrounding whitespace is not accepted.
    public init?(userInput text: String) {
        var body = Substring(text)
        if body.lowercased().hasPrefix(Self.prefix) { body = body.dropFirst(Self.prefix.count) }
        guard body.utf8.count == 64, let bytes = Hex.decode(body.lowercased()[...]) else { return nil }
        self.init(bytes: bytes)
    }

    public static func < (lhs: ContentHash, rhs: ContentHash) -> Bool {
        (lhs.w0, lhs.w1, lhs.w2, lhs.w3) < (rhs.w0, rhs.w1, rhs.w2, rhs.w3)
    }

    /// The SHA-256 of the empty string, the address of an empty file.
    public static let empty = ContentHash(SHA256.hash(data: [UInt8]()))
}

extension ContentHash: Codable {
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let hash = ContentHash(canonical: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "not a canonical sha256:<64 lowercase hex> value")
        }
        self = hash
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
