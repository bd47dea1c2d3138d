import AlexandriaCore
import Crypto
import Foundation

/// Reads the test vectors in Protocol/test-vectors, so the spec and the code cannot drift apart.
enum Vectors {
    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Protocol/test-vectors")

    static func load<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: directory.appendingPathComponent(name)))
    }

    struct ChunkingFile: Decodable {
        let version: Int
        let cases: [ChunkingCase]
    }

    struct ChunkingCase: Decodable {
        struct DataSpec: Decodable {
            let kind: String
            let length: Int
            let seed: UInt64?
        }
        struct Chunk: Decodable {
            let offset: UInt64
            let length: UInt32
            let id: String
        }
        struct RangeExample: Decodable {
            let range: [UInt64]
            let chunkIndices: [Int]
        }
        let name: String
        let data: DataSpec
        let averageBits: Int
        let chunker: String
        let address: String
        let chunks: [Chunk]
        let merkleRoot: String
        let rangeExamples: [RangeExample]?

    }

    struct MerkleFile: Decodable {
        struct Root: Decodable {
            let size: Int
            let root: String
        }
        struct Inclusion: Decodable {
            let index: Int
            let size: Int
            let proof: [String]
        }
        struct Consistency: Decodable {
            let oldSize: Int
            let newSize: Int
            let proof: [String]
        }
        struct LeafExample: Decodable {
            let id: String
            let offset: UInt64
            let length: UInt32
            let leafData: String
            let leafHash: String
        }
        let leafData: [String]
        let leafHashes: [String]
        let roots: [Root]
        let inclusionProofs: [Inclusion]
        let consistencyProofs: [Consistency]
        let emptyRoot: String
        let chunkLeafExample: LeafExample
    }

    /// The spec's deterministic test data (Protocol/chunking-and-hashing.md, "Test vectors").
    static func bytes(_ spec: ChunkingCase.DataSpec) -> [UInt8] {
        switch spec.kind {
        case "zeros":
            return [UInt8](repeating: 0, count: spec.length)
        case "text":
            let phrase = Array("The quick brown fox jumps over the lazy dog. ".utf8)
            return (0..<spec.length).map { phrase[$0 % phrase.count] }
        default:
            return counterBytes(seed: spec.seed ?? 0, length: spec.length)
        }
    }

    static func counterBytes(seed: UInt64, length: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(length + 32)
        var block: UInt64 = 0
        let prefix = Array("alexandria/test-data/v1".utf8)
        while out.count < length {
            var input = prefix
            withUnsafeBytes(of: seed.bigEndian) { input += $0 }
            withUnsafeBytes(of: block.bigEndian) { input += $0 }
            out += SHA256.hash(data: input)
            block += 1
        }
        return Array(out.prefix(length))
    }
}

func hash(_ hex: String) -> ContentHash { ContentHash(bytes: Hex.decode(hex)!)! }
