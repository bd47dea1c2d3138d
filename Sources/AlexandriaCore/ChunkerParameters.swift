/// The parameters of the FastCDC-style chunker (Protocol/chunking-and-hashing.md, "Parameters").
///
/// Everything is derived from one number, `averageBits`: the average chunk size is `2^averageBits`, the minimum a
/// quarter of it, the maximum four times it. Normalised chunking (level 2) uses a mask with two more bits than the
/// average below the average size and two fewer above it, which narrows the size distribution around the average.
/// Masks take the *top* bits of the 64-bit gear hash, the bits that depend on the most recent 64 bytes.
public struct ChunkerParameters: Hashable, Sendable, Codable, CustomStringConvertible {
    public let averageBits: Int
    public var minSize: Int { 1 << (averageBits - 2) }
    public var averageSize: Int { 1 << averageBits }
    public var maxSize: Int { 1 << (averageBits + 2) }
    /// Used between `minSize` and `averageSize`: `averageBits + 2` top bits set.
    public var maskSmall: UInt64 { Self.topBits(averageBits + 2) }
    /// Used between `averageSize` and `maxSize`: `averageBits - 2` top bits set.
    public var maskLarge: UInt64 { Self.topBits(averageBits - 2) }

    /// The smallest and largest averages an implementation must accept (4 KiB ... 4 MiB).
    public static let allowedAverageBits = 12...22

    /// Alexandria's chunking, version 1: 256 KiB average (64 KiB min, 1 MiB max). See the spec for the measurement.
    public static let v1 = ChunkerParameters(uncheckedAverageBits: 18)

    public init?(averageBits: Int) {
        guard Self.allowedAverageBits.contains(averageBits) else { return nil }
        self.averageBits = averageBits
    }

    private init(uncheckedAverageBits: Int) { self.averageBits = uncheckedAverageBits }

    /// The form recorded in the index and in manifests: `fastcdc-gear-v1/<min>/<avg>/<max>`.
    public var description: String { "fastcdc-gear-v1/\(minSize)/\(averageSize)/\(maxSize)" }

    static func topBits(_ n: Int) -> UInt64 { n == 0 ? 0 : ~UInt64(0) << UInt64(64 - n) }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let parsed = ChunkerParameters(parsing: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "unknown chunker '\(text)'")
        }
        self = parsed
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// Parses `fastcdc-gear-v1/<min>/<avg>/<max>`; only the sizes this version derives from `averageBits` are valid.
    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "fastcdc-gear-v1", let avg = Int(parts[2]), avg > 0,
            avg.nonzeroBitCount == 1
        else { return nil }
        guard let p = ChunkerParameters(averageBits: avg.trailingZeroBitCount),
            parts[1] == Substring(String(p.minSize)), parts[2] == Substring(String(p.averageSize)),
            parts[3] == Substring(String(p.maxSize))
        else { return nil }
        self = p
    }
}
