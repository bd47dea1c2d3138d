import AlexandriaCore
import AlexandriaGossip
import NIOCore

/// Named limits of wire protocol v1 (Protocol/wire-v1.md). Checked before anything is allocated.
public enum WireLimits {
    /// Largest frame: type byte plus payload. A chunk of up to 1 MiB (v1 max) plus headers fits with room; larger
    /// stored forms of bigger chunkers are never sent in one frame.
    public static let maxFrameBytes = (2 << 20) + 4096
    public static let maxHaveAddresses = 1024
    public static let maxRecipeEntries = 16_384
    public static let maxChunksPerRequest = 64
    /// Outstanding chunk requests one connection may have before the server calls it a flood.
    public static let maxOutstandingChunks = 256
    public static let maxErrorMessageBytes = 1024
    public static let maxManifestBytes = 2 << 20
    public static let maxLogEntriesPerMessage = 4096
    public static let handshakeTimeoutSeconds: Int64 = 10
    public static let idleTimeoutSeconds: Int64 = 60
}

/// Closed set of error codes.
public enum WireErrorCode: UInt16, Sendable {
    case protocolViolation = 1
    case frameTooLarge = 2
    case unsupportedVersion = 3
    case unauthenticated = 4
    case notFound = 5
    case overloaded = 6
    case `internal` = 7
    case unknownMessage = 8
}

/// Why bytes from a peer were refused.
public struct WireError: Error, Equatable, CustomStringConvertible, Sendable {
    public let code: WireErrorCode
    public let message: String
    public init(_ code: WireErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
    public static func == (a: WireError, b: WireError) -> Bool { a.code == b.code }
}

/// Availability of one file at a peer.
public enum Availability: Equatable, Sendable {
    case none
    case complete
    /// Bit i set = chunk i held (MSB first within each byte).
    case partial(chunkCount: Int, bits: [UInt8])

    public func has(chunk i: Int) -> Bool {
        switch self {
        case .none: return false
        case .complete: return true
        case .partial(let count, let bits): return i < count && bits[i / 8] & (0x80 >> UInt8(i % 8)) != 0
        }
    }
}

/// Every message of wire protocol v1. Encoding and decoding are pure functions of bytes.
public enum WireMessage: Equatable, Sendable {
    public static let magic: [UInt8] = Array("ALXW".utf8)

    case hello(minVersion: UInt16, maxVersion: UInt16, nodeKey: [UInt8], nonce: [UInt8], listenPort: UInt16)
    case auth(signature: [UInt8])
    case ping(UInt64)
    case pong(UInt64)
    case haveQuery([ContentHash])
    case have([(ContentHash, Availability)])
    case getRecipe(address: ContentHash, start: UInt32, maxCount: UInt32)
    case recipe(
        address: ContentHash, size: UInt64, averageBits: UInt8, total: UInt32, start: UInt32,
        entries: [(ContentHash, UInt32)])
    case getChunks(requestID: UInt32, ids: [ContentHash])
    case chunk(requestID: UInt32, index: UInt16, id: ContentHash, codec: UInt8, rawLength: UInt32, payload: [UInt8])
    case chunkMissing(requestID: UInt32, index: UInt16, id: ContentHash)
    case getManifestByID(ContentHash)
    case getManifestByRelease(String)
    case manifest(envelope: [UInt8], publisherKey: [UInt8], entries: [[UInt8]], checkpoint: String)
    case error(WireErrorCode, String)
    /// Peer exchange (Protocol/gossip-v1.md): ask for, and answer with, known node addresses.
    case peersQuery
    case peers([PeerRecord])
    /// Catalog items, pushed or sent on request. `path` holds 8-byte node-key prefixes of nodes that were already
    /// sent these items, so the receiver does not send them there again.
    case items(path: [[UInt8]], items: [CatalogItem])
    /// One step of set reconciliation; `round` counts the steps of one exchange.
    case reconcile(round: UInt8, ranges: [Reconciler.Range])
    /// Items this node lacks, by id.
    case want([ContentHash])

    public var type: UInt8 {
        switch self {
        case .hello: return 0x01
        case .auth: return 0x02
        case .ping: return 0x03
        case .pong: return 0x04
        case .haveQuery: return 0x10
        case .have: return 0x11
        case .getRecipe: return 0x12
        case .recipe: return 0x13
        case .getChunks: return 0x20
        case .chunk: return 0x21
        case .chunkMissing: return 0x22
        case .getManifestByID, .getManifestByRelease: return 0x30
        case .manifest: return 0x31
        case .error: return 0x7F
        case .peersQuery: return 0x40
        case .peers: return 0x41
        case .items: return 0x50
        case .reconcile: return 0x51
        case .want: return 0x52
        }
    }

    public static func == (a: WireMessage, b: WireMessage) -> Bool {
        a.encodedPayload == b.encodedPayload && a.type == b.type
    }

    /// The payload bytes (the frame is `length u32 | type u8 | payload`).
    public var encodedPayload: [UInt8] {
        var w = ByteWriter()
        switch self {
        case .hello(let minV, let maxV, let key, let nonce, let port):
            w.bytes(Self.magic); w.u16(minV); w.u16(maxV); w.bytes(key); w.bytes(nonce); w.u16(port)
        case .auth(let signature): w.bytes(signature)
        case .ping(let t), .pong(let t): w.u64(t)
        case .haveQuery(let addresses):
            w.u16(UInt16(addresses.count))
            for a in addresses { w.hash(a) }
        case .have(let items):
            w.u16(UInt16(items.count))
            for (a, state) in items {
                w.hash(a)
                switch state {
                case .none: w.u8(0)
                case .complete: w.u8(1)
                case .partial(let count, let bits): w.u8(2); w.u32(UInt32(count)); w.bytes(bits)
                }
            }
        case .getRecipe(let a, let start, let max): w.hash(a); w.u32(start); w.u32(max)
        case .recipe(let a, let size, let bits, let total, let start, let entries):
            w.hash(a); w.u64(size); w.u8(bits); w.u32(total); w.u32(start); w.u32(UInt32(entries.count))
            for (id, length) in entries { w.hash(id); w.u32(length) }
        case .getChunks(let rid, let ids):
            w.u32(rid); w.u16(UInt16(ids.count))
            for id in ids { w.hash(id) }
        case .chunk(let rid, let index, let id, let codec, let raw, let payload):
            w.u32(rid); w.u16(index); w.hash(id); w.u8(codec); w.u32(raw); w.bytes(payload)
        case .chunkMissing(let rid, let index, let id): w.u32(rid); w.u16(index); w.hash(id)
        case .getManifestByID(let id): w.u8(0); w.hash(id)
        case .getManifestByRelease(let name): w.u8(1); w.string16(name)
        case .manifest(let envelope, let key, let entries, let checkpoint):
            w.u32(UInt32(envelope.count)); w.bytes(envelope); w.u16(UInt16(key.count)); w.bytes(key)
            w.u16(UInt16(entries.count))
            for e in entries { w.u32(UInt32(e.count)); w.bytes(e) }
            w.string16(checkpoint)
        case .error(let code, let message): w.u16(code.rawValue); w.string16(message)
        case .peersQuery: break
        case .peers(let records):
            w.u16(UInt16(records.count))
            for p in records {
                w.bytes(p.nodeKey); w.u8(UInt8(p.host.utf8.count)); w.bytes(Array(p.host.utf8)); w.u16(p.port)
                w.u64(p.lastSeen)
            }
        case .items(let path, let items):
            w.u8(UInt8(path.count))
            for p in path { w.bytes(p) }
            w.u16(UInt16(items.count))
            for item in items { w.u8(item.kind.rawValue); w.u32(UInt32(item.body.count)); w.bytes(item.body) }
        case .reconcile(let round, let ranges):
            w.u8(round); w.u16(UInt16(ranges.count))
            for r in ranges {
                switch r.upper {
                case .id(let id): w.u8(0); w.hash(id)
                case .infinity: w.u8(1)
                }
                switch r.mode {
                case .skip: w.u8(0)
                case .fingerprint(let count, let fp): w.u8(1); w.u32(count); w.bytes(fp)
                case .ids(let ids):
                    w.u8(2); w.u16(UInt16(ids.count))
                    for id in ids { w.hash(id) }
                }
            }
        case .want(let ids):
            w.u16(UInt16(ids.count))
            for id in ids { w.hash(id) }
        }
        return w.out
    }

    /// Bytes of a CHUNK payload before the chunk bytes: request id u32, index u16, id 32, codec u8, raw length u32.
    static let chunkHeaderBytes = 43

    static func checkChunkFields(codec: UInt8, rawLength: UInt32) throws(WireError) {
        guard rawLength > 0, rawLength <= Limits.maxChunkBytes, codec <= 2 else {
            throw WireError(.protocolViolation, "chunk length or codec out of range")
        }
    }

    /// Decodes a CHUNK frame's payload (type 0x21) straight from the receive buffer: the 43-byte header is read in
    /// place and the chunk bytes are copied once, into the message (`decode(type:payload:)` copies them twice: into
    /// the payload array, then out of it). The same checks and errors as `decode(type: 0x21, payload:)`.
    /// `payloadLength` is the frame length minus the type byte; `buffer` must hold that many readable bytes, and
    /// exactly those are consumed.
    public static func decodeChunk(
        from buffer: inout ByteBuffer, payloadLength: Int
    ) throws(WireError)
        -> WireMessage
    {
        guard payloadLength >= chunkHeaderBytes, buffer.readableBytes >= payloadLength,
            let rid = buffer.readInteger(as: UInt32.self), let index = buffer.readInteger(as: UInt16.self),
            let idBytes = buffer.readBytes(length: 32), let id = ContentHash(bytes: idBytes),
            let codec = buffer.readInteger(as: UInt8.self), let raw = buffer.readInteger(as: UInt32.self)
        else { throw WireError(.protocolViolation, "message cut short") }
        try checkChunkFields(codec: codec, rawLength: raw)
        let chunk = buffer.readBytes(length: payloadLength - chunkHeaderBytes) ?? []
        return .chunk(requestID: rid, index: index, id: id, codec: codec, rawLength: raw, payload: chunk)
    }

    /// Decodes one frame's type and payload, checking every length against its limit and refusing trailing bytes.
    public static func decode(type: UInt8, payload: [UInt8]) throws(WireError) -> WireMessage {
        var r = ByteReader(payload)
        let message: WireMessage
        switch type {
        case 0x01:
            guard try r.bytes(4) == magic else { throw WireError(.protocolViolation, "bad HELLO magic") }
            message = .hello(
                minVersion: try r.u16(), maxVersion: try r.u16(), nodeKey: try r.bytes(32), nonce: try r.bytes(32),
                listenPort: try r.u16())
        case 0x02: message = .auth(signature: try r.bytes(64))
        case 0x03: message = .ping(try r.u64())
        case 0x04: message = .pong(try r.u64())
        case 0x10:
            let n = Int(try r.u16())
            guard n <= WireLimits.maxHaveAddresses else { throw WireError(.protocolViolation, "too many addresses") }
            message = .haveQuery(try (0..<n).map { _ throws(WireError) in try r.hash() })
        case 0x11:
            let n = Int(try r.u16())
            guard n <= WireLimits.maxHaveAddresses else { throw WireError(.protocolViolation, "too many addresses") }
            var items: [(ContentHash, Availability)] = []
            for _ in 0..<n {
                let a = try r.hash()
                switch try r.u8() {
                case 0: items.append((a, .none))
                case 1: items.append((a, .complete))
                case 2:
                    let count = Int(try r.u32())
                    guard count <= Limits.maxChunksPerFile else {
                        throw WireError(.protocolViolation, "bitfield too long")
                    }
                    items.append((a, .partial(chunkCount: count, bits: try r.bytes((count + 7) / 8))))
                default: throw WireError(.protocolViolation, "unknown availability state")
                }
            }
            message = .have(items)
        case 0x12:
            let a = try r.hash()
            let start = try r.u32()
            let max = try r.u32()
            guard max > 0, max <= WireLimits.maxRecipeEntries else {
                throw WireError(.protocolViolation, "bad recipe page size")
            }
            message = .getRecipe(address: a, start: start, maxCount: max)
        case 0x13:
            let a = try r.hash()
            let size = try r.u64()
            let bits = try r.u8()
            let total = try r.u32()
            let start = try r.u32()
            let n = Int(try r.u32())
            guard n <= WireLimits.maxRecipeEntries, Int(total) <= Limits.maxChunksPerFile,
                UInt64(start) + UInt64(n) <= UInt64(total)
            else { throw WireError(.protocolViolation, "recipe page out of bounds") }
            var entries: [(ContentHash, UInt32)] = []
            entries.reserveCapacity(n)
            for _ in 0..<n { entries.append((try r.hash(), try r.u32())) }
            message = .recipe(address: a, size: size, averageBits: bits, total: total, start: start, entries: entries)
        case 0x20:
            let rid = try r.u32()
            let n = Int(try r.u16())
            guard n > 0, n <= WireLimits.maxChunksPerRequest else {
                throw WireError(.protocolViolation, "bad chunk count")
            }
            message = .getChunks(requestID: rid, ids: try (0..<n).map { _ throws(WireError) in try r.hash() })
        case 0x21:
            let rid = try r.u32()
            let index = try r.u16()
            let id = try r.hash()
            let codec = try r.u8()
            let raw = try r.u32()
            try checkChunkFields(codec: codec, rawLength: raw)
            message = .chunk(requestID: rid, index: index, id: id, codec: codec, rawLength: raw, payload: r.rest())
        case 0x22: message = .chunkMissing(requestID: try r.u32(), index: try r.u16(), id: try r.hash())
        case 0x30:
            switch try r.u8() {
            case 0: message = .getManifestByID(try r.hash())
            case 1: message = .getManifestByRelease(try r.string16(max: 512))
            default: throw WireError(.protocolViolation, "unknown manifest query")
            }
        case 0x31:
            let n = Int(try r.u32())
            guard n <= WireLimits.maxManifestBytes else { throw WireError(.protocolViolation, "manifest too large") }
            let envelope = try r.bytes(n)
            let key = try r.bytes(Int(try r.u16()))
            let count = Int(try r.u16())
            guard count <= WireLimits.maxLogEntriesPerMessage else {
                throw WireError(.protocolViolation, "too many entries")
            }
            var entries: [[UInt8]] = []
            for _ in 0..<count {
                let len = Int(try r.u32())
                guard len <= WireLimits.maxManifestBytes else { throw WireError(.protocolViolation, "entry too large") }
                entries.append(try r.bytes(len))
            }
            message = .manifest(
                envelope: envelope, publisherKey: key, entries: entries, checkpoint: try r.string16(max: 16384))
        case 0x7F:
            guard let code = WireErrorCode(rawValue: try r.u16()) else {
                throw WireError(.protocolViolation, "unknown error code")
            }
            message = .error(code, try r.string16(max: WireLimits.maxErrorMessageBytes))
        case 0x40: message = .peersQuery
        case 0x41:
            let n = Int(try r.u16())
            guard n <= GossipLimits.maxPeers else { throw WireError(.protocolViolation, "too many peers") }
            var records: [PeerRecord] = []
            for _ in 0..<n {
                let key = try r.bytes(32)
                let hostLength = Int(try r.u8())
                guard let host = String(validating: try r.bytes(hostLength), as: UTF8.self), !host.isEmpty else {
                    throw WireError(.protocolViolation, "a peer host is not UTF-8")
                }
                records.append(PeerRecord(nodeKey: key, host: host, port: try r.u16(), lastSeen: try r.u64()))
            }
            message = .peers(records)
        case 0x50:
            let pathCount = Int(try r.u8())
            guard pathCount <= GossipLimits.maxPathEntries else { throw WireError(.protocolViolation, "path too long") }
            let path = try (0..<pathCount).map { _ throws(WireError) in try r.bytes(8) }
            let n = Int(try r.u16())
            guard n <= GossipLimits.maxItemsPerMessage else { throw WireError(.protocolViolation, "too many items") }
            var items: [CatalogItem] = []
            for _ in 0..<n {
                guard let kind = CatalogItem.Kind(rawValue: try r.u8()) else {
                    throw WireError(.protocolViolation, "unknown item kind")
                }
                let length = Int(try r.u32())
                guard length <= CatalogItem.maxBodyBytes else { throw WireError(.protocolViolation, "item too large") }
                items.append(CatalogItem(kind: kind, body: try r.bytes(length)))
            }
            message = .items(path: path, items: items)
        case 0x51:
            let round = try r.u8()
            let n = Int(try r.u16())
            guard n > 0, n <= GossipLimits.maxRanges else { throw WireError(.protocolViolation, "bad range count") }
            var ranges: [Reconciler.Range] = []
            for _ in 0..<n {
                let upper: Reconciler.RangeBound
                switch try r.u8() {
                case 0: upper = .id(try r.hash())
                case 1: upper = .infinity
                default: throw WireError(.protocolViolation, "unknown range bound")
                }
                let mode: Reconciler.Mode
                switch try r.u8() {
                case 0: mode = .skip
                case 1: mode = .fingerprint(count: try r.u32(), fingerprint: try r.bytes(16))
                case 2:
                    let count = Int(try r.u16())
                    guard count <= GossipLimits.maxIDsPerRange else {
                        throw WireError(.protocolViolation, "id list too long")
                    }
                    mode = .ids(try (0..<count).map { _ throws(WireError) in try r.hash() })
                default: throw WireError(.protocolViolation, "unknown range mode")
                }
                ranges.append(Reconciler.Range(upper: upper, mode: mode))
            }
            message = .reconcile(round: round, ranges: ranges)
        case 0x52:
            let n = Int(try r.u16())
            guard n <= GossipLimits.maxWant else { throw WireError(.protocolViolation, "too many wanted ids") }
            message = .want(try (0..<n).map { _ throws(WireError) in try r.hash() })
        default:
            throw WireError(.unknownMessage, "unknown message type 0x\(String(type, radix: 16))")
        }
        guard r.atEnd else { throw WireError(.protocolViolation, "trailing bytes after a message of type \(type)") }
        return message
    }
}

/// A node address as peer exchange carries it: the node's key, where it listens, and when it was last seen
/// (seconds since 1970, by the sender's clock).
public struct PeerRecord: Equatable, Sendable {
    public let nodeKey: [UInt8]
    public let host: String
    public let port: UInt16
    public let lastSeen: UInt64
    public init(nodeKey: [UInt8], host: String, port: UInt16, lastSeen: UInt64) {
        self.nodeKey = nodeKey
        // At most 255 bytes on the wire, cut at a character boundary.
        var host = host
        while host.utf8.count > 255 { host.removeLast() }
        self.host = host
        self.port = port
        self.lastSeen = lastSeen
    }
}

struct ByteWriter {
    var out: [UInt8] = []
    mutating func u8(_ v: UInt8) { out.append(v) }
    mutating func u16(_ v: UInt16) { out += [UInt8(v >> 8), UInt8(v & 0xff)] }
    mutating func u32(_ v: UInt32) {
        for s in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) }
    }
    mutating func u64(_ v: UInt64) {
        for s in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) }
    }
    mutating func bytes(_ b: [UInt8]) { out += b }
    mutating func hash(_ h: ContentHash) { out += h.bytes }
    mutating func string16(_ s: String) {
        let b = Array(s.utf8.prefix(65535))
        u16(UInt16(b.count))
        out += b
    }
}

struct ByteReader {
    let data: [UInt8]
    var i = 0
    init(_ data: [UInt8]) { self.data = data }
    var atEnd: Bool { i == data.count }
    mutating func need(_ n: Int) throws(WireError) {
        guard n >= 0, data.count - i >= n else { throw WireError(.protocolViolation, "message cut short") }
    }
    mutating func u8() throws(WireError) -> UInt8 {
        try need(1)
        defer { i += 1 }
        return data[i]
    }
    mutating func u16() throws(WireError) -> UInt16 {
        try need(2)
        defer { i += 2 }
        return UInt16(data[i]) << 8 | UInt16(data[i + 1])
    }
    mutating func u32() throws(WireError) -> UInt32 {
        try need(4)
        var v: UInt32 = 0
        for k in 0..<4 { v = v << 8 | UInt32(data[i + k]) }
        i += 4
        return v
    }
    mutating func u64() throws(WireError) -> UInt64 {
        try need(8)
        var v: UInt64 = 0
        for k in 0..<8 { v = v << 8 | UInt64(data[i + k]) }
        i += 8
        return v
    }
    mutating func bytes(_ n: Int) throws(WireError) -> [UInt8] {
        try need(n)
        defer { i += n }
        return Array(data[i..<i + n])
    }
    mutating func hash() throws(WireError) -> ContentHash { ContentHash(bytes: try bytes(32))! }
    mutating func string16(max: Int) throws(WireError) -> String {
        let n = Int(try u16())
        guard n <= max else { throw WireError(.protocolViolation, "string too long") }
        guard let s = String(validating: try bytes(n), as: UTF8.self) else {
            throw WireError(.protocolViolation, "string is not UTF-8")
        }
        return s
    }
    mutating func rest() -> [UInt8] {
        defer { i = data.count }
        return Array(data[i...])
    }
}
