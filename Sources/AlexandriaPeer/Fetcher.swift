import AlexandriaCore
import AlexandriaStore
import AlexandriaWire
import Foundation
import Logging
import NIOCore
import NIOPosix

/// `host:port`.
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), port > 0,
            port < 65536
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// What a fetch did.
public struct FetchReport: Sendable, Encodable {
    public let address: String
    public let size: UInt64
    public let chunks: Int
    /// Chunk bytes that came over the network (verified), and those already in the local store.
    public let bytesDownloaded: UInt64
    public let bytesFromLocalStore: UInt64
    /// Verified bytes received from each peer.
    public let peers: [String: UInt64]
    /// Peers dropped, with why.
    public let droppedPeers: [String: String]
    public let seconds: Double
}

/// The shared state of one file fetch: which chunks are needed, who is fetching what, who misbehaved.
actor FetchPlan {
    let recipeBox: RecipeBox
    var needed: Set<Int> = []
    var assigned: [Int: (peer: String, at: Date)] = [:]
    var done: Set<Int> = []
    var received: [String: UInt64] = [:]
    var dropped: [String: String] = [:]
    var downloaded: UInt64 = 0
    let stallSeconds: Double
    /// Chunk indices the local store held before the fetch started (copied from the store, not downloaded).
    var initiallyHeld: Set<Int> = []
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(stallSeconds: Double) {
        recipeBox = RecipeBox()
        self.stallSeconds = stallSeconds
    }

    var recipe: FileRecipe? { recipeBox.recipe }

    /// The first valid recipe wins; later ones must have the same root or that peer is not used.
    func offer(_ recipe: FileRecipe, alreadyHeld: Set<Int>) -> Bool {
        if let current = recipeBox.recipe { return current.merkleRoot == recipe.merkleRoot }
        recipeBox.recipe = recipe
        done = alreadyHeld
        initiallyHeld = alreadyHeld
        needed = Set(recipe.chunks.indices).subtracting(alreadyHeld)
        wake()
        return true
    }

    func waitForRecipe() async -> FileRecipe? {
        if recipeBox.recipe == nil && dropped.count < 1_000 {
            await withCheckedContinuation { waiters.append($0) }
        }
        return recipeBox.recipe
    }

    func giveUpWaiting() { wake() }

    private func wake() {
        for w in waiters { w.resume() }
        waiters = []
    }

    var isComplete: Bool { recipeBox.recipe != nil && needed.isEmpty && assigned.isEmpty }

    /// Up to `count` chunk indices for `peer` (only ones it has). When nothing is unassigned, an idle peer takes over
    /// chunks that another peer has held longer than half the stall time, so a fetch never sits at 99 %.
    func take(peer: String, count: Int, has: (Int) -> Bool) -> [Int] {
        var out: [Int] = []
        for i in needed.sorted() where out.count < count && has(i) {
            out.append(i)
        }
        for i in out {
            needed.remove(i)
            assigned[i] = (peer, Date())
        }
        if out.isEmpty {
            let now = Date()
            for (i, a) in assigned.sorted(by: { $0.key < $1.key }) where out.count < count {
                if a.peer != peer, now.timeIntervalSince(a.at) > stallSeconds / 2, has(i) {
                    assigned[i] = (peer, now)
                    out.append(i)
                }
            }
        }
        return out
    }

    /// Returns true if this delivery was the first for chunk `i`.
    func complete(_ indices: [Int], peer: String, bytes: UInt64) -> Bool {
        var fresh = false
        for i in indices where !done.contains(i) {
            done.insert(i)
            assigned[i] = nil
            needed.remove(i)
            fresh = true
        }
        if fresh {
            received[peer, default: 0] += bytes
            downloaded += bytes
        }
        return fresh
    }

    /// A peer failed or went away: its chunks go back to the queue.
    func release(peer: String, reason: String?) {
        for (i, a) in assigned where a.peer == peer && !done.contains(i) {
            assigned[i] = nil
            needed.insert(i)
        }
        if let reason { dropped[peer] = reason }
    }

    func snapshot() -> (Int, UInt64) { (done.count, downloaded) }
}

final class RecipeBox: @unchecked Sendable { var recipe: FileRecipe? }

/// Fetches files by address from several peers at once, verifying every chunk before it is written.
public final class Fetcher: @unchecked Sendable {
    public let store: ContentStore
    public let identity: NodeIdentity
    let logger: Logger
    /// No message for this long while requests are outstanding: the peer is stalled.
    public var stallSeconds: Double = 5
    /// Outstanding GET_CHUNKS per peer, and chunks per request.
    public var window = 4
    public var batch = 16

    public init(store: ContentStore, identity: NodeIdentity, logger: Logger) {
        self.store = store
        self.identity = identity
        self.logger = logger
    }

    /// Fetches `address` into `path`. Chunks the local store already holds are not downloaded again; every chunk
    /// received is verified and lands in the store; the file is renamed into place only after its whole SHA-256
    /// matches `address` (and, if given, its chunk list matches `expectedRoot`).
    public func fetch(
        _ address: ContentHash, to path: String, peers: [PeerAddress], expectedRoot: ContentHash? = nil,
        progress: (@Sendable (Int, Int, UInt64) -> Void)? = nil
    ) async throws -> FetchReport {
        let started = Date()
        let plan = FetchPlan(stallSeconds: stallSeconds)
        let temporary = path + ".alexandria-partial"
        let output = try OutputFile(path: temporary)
        var localBytes: UInt64 = 0

        if let recipe = try store.recipe(of: address) {
            // Already here: no network at all.
            _ = await plan.offer(recipe, alreadyHeld: Set(recipe.chunks.indices))
        } else {
            guard !peers.isEmpty else {
                throw WireError(
                    .notFound, "\(address) is not in the local store and no peer was given (--peer HOST:PORT)")
            }
            try await withThrowingDiscardingTaskGroup { group in
                for peer in peers {
                    group.addTask {
                        await self.work(
                            peer: peer, address: address, plan: plan, output: output,
                            expectedRoot: expectedRoot, progress: progress)
                    }
                }
            }
        }
        guard let recipe = await plan.recipe else {
            let dropped = await plan.dropped
            throw WireError(
                .notFound,
                "no peer provided \(address): \(dropped.map { "\($0.key): \($0.value)" }.joined(separator: "; "))")
        }
        guard await plan.isComplete else {
            let dropped = await plan.dropped
            throw WireError(
                .notFound,
                "the fetch stopped with chunks missing; no remaining peer has them (\(dropped.map { "\($0.key): \($0.value)" }.joined(separator: "; ")))"
            )
        }
        // Chunks that were in the local store: copy them into the output, verified on read.
        if await plan.initiallyHeld.count == recipe.chunks.count { try output.prepare(size: recipe.size) }
        localBytes = try output.fillFromStore(store, recipe: recipe, only: await plan.initiallyHeld)
        guard try output.sha256() == address else {
            output.discard()
            throw WireError(.protocolViolation, "the assembled file does not hash to \(address); nothing was written")
        }
        try output.finish(renamingTo: path)
        if try store.recipe(of: address) == nil { try store.registerFile(recipe) }
        let (_, downloaded) = await plan.snapshot()
        return FetchReport(
            address: address.description, size: recipe.size, chunks: recipe.chunks.count, bytesDownloaded: downloaded,
            bytesFromLocalStore: localBytes, peers: await plan.received,
            droppedPeers: await plan.dropped, seconds: Date().timeIntervalSince(started))
    }

    /// One peer's share of the work, from connecting to running out of chunks.
    func work(
        peer: PeerAddress, address: ContentHash, plan: FetchPlan, output: OutputFile, expectedRoot: ContentHash?,
        progress: (@Sendable (Int, Int, UInt64) -> Void)?
    ) async {
        let name = peer.description
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(5))
                .connect(host: peer.host, port: peer.port) { channel in PeerSession.pipeline(channel) }
            try await channel.executeThenClose { inbound, outbound in
                try await PeerSession.handshake(
                    identity: identity, initiator: true, listenPort: 0, inbound: inbound, outbound: outbound
                ) { session in
                    try await self.exchange(
                        &session, channel: channel.channel, name: name, address: address, plan: plan,
                        output: output, expectedRoot: expectedRoot, progress: progress)
                }
            }
        } catch {
            logger.info("peer dropped", metadata: ["peer.address": "\(name)", "error": "\(error)"])
            await plan.release(peer: name, reason: "\(error)")
        }
        await plan.giveUpWaiting()
    }

    func exchange(
        _ session: inout PeerSession, channel: Channel, name: String, address: ContentHash, plan: FetchPlan,
        output: OutputFile, expectedRoot: ContentHash?, progress: (@Sendable (Int, Int, UInt64) -> Void)?
    ) async throws {
        // Stall watchdog: closing the channel ends the inbound stream, which ends this exchange.
        let stall = TimeAmount.milliseconds(Int64(stallSeconds * 1000))
        var watchdog = channel.eventLoop.scheduleTask(in: stall) { channel.close(promise: nil) }
        defer { watchdog.cancel() }
        func rearm() {
            watchdog.cancel()
            watchdog = channel.eventLoop.scheduleTask(in: stall) { channel.close(promise: nil) }
        }
        try await session.send(.haveQuery([address]))
        guard case .have(let items)? = try await session.next(), items.count == 1, items[0].0 == address else {
            throw WireError(.protocolViolation, "the peer did not answer the availability query")
        }
        rearm()
        let availability = items[0].1
        guard availability != .none else {
            await plan.release(peer: name, reason: nil)
            return
        }
        if await plan.recipe == nil {
            let recipe = try await fetchRecipe(&session, address: address)
            rearm()
            if let expectedRoot, recipe.merkleRoot != expectedRoot {
                throw WireError(.protocolViolation, "the peer's chunk list does not match the manifest's Merkle root")
            }
            let held = try store.holds(recipe.chunks.map(\.id))
            let heldIndices = Set(recipe.chunks.indices.filter { held.contains(recipe.chunks[$0].id) })
            guard await plan.offer(recipe, alreadyHeld: heldIndices) else {
                throw WireError(.protocolViolation, "the peer's chunk list differs from the one already chosen")
            }
            try output.prepare(size: recipe.size)
        }
        // Waiting for another peer's chunk list is not a stall of this one: no watchdog while we wait.
        watchdog.cancel()
        guard let recipe = await plan.waitForRecipe() else { return }
        rearm()
        // Where each distinct chunk goes in the file (a chunk can repeat).
        var offsets: [ContentHash: [UInt64]] = [:]
        for chunk in recipe.chunks { offsets[chunk.id, default: []].append(chunk.offset) }
        let decoder = ChunkDecoder()
        var outstanding: [UInt32: [Int]] = [:]
        var nextRequest: UInt32 = 1
        var pending: [VerifiedChunk] = []
        var misses = 0
        // Whatever happens to this peer, the chunks it already delivered (verified, and counted as done) are stored.
        do {
            while true {
                while outstanding.count < window {
                    let indices = await plan.take(peer: name, count: batch) { availability.has(chunk: $0) }
                    if indices.isEmpty { break }
                    outstanding[nextRequest] = indices
                    try await session.send(
                        .getChunks(requestID: nextRequest, ids: indices.map { recipe.chunks[$0].id }))
                    nextRequest &+= 1
                }
                if outstanding.isEmpty {
                    if await plan.isComplete { break }
                    // Others are still working; wait a little and look again (end game: take over stalled chunks).
                    try store.put(pending)
                    pending.removeAll()
                    try await Task.sleep(nanoseconds: 50_000_000)
                    rearm()
                    continue
                }
                guard let message = try await session.next() else {
                    throw WireError(
                        .protocolViolation, "the peer closed the connection or stalled for \(stallSeconds) s")
                }
                rearm()
                switch message {
                case .chunk(let rid, let index, let id, let codec, let rawLength, let payload):
                    guard let request = outstanding[rid], Int(index) < request.count else {
                        throw WireError(.protocolViolation, "a chunk that was not requested")
                    }
                    let fileIndex = request[Int(index)]
                    guard recipe.chunks[fileIndex].id == id, Int(rawLength) == Int(recipe.chunks[fileIndex].length),
                        let bytes = decoder.decode(codec: codec, payload: payload, rawLength: Int(rawLength)),
                        let verified = VerifiedChunk(id: id, bytes: bytes)
                    else { throw WireError(.protocolViolation, "the peer sent bytes that do not match chunk \(id)") }
                    try output.write(verified, at: offsets[id] ?? [])
                    pending.append(verified)
                    if pending.count >= 32 {
                        try store.put(pending)
                        pending.removeAll()
                    }
                    _ = await plan.complete([fileIndex], peer: name, bytes: UInt64(bytes.count))
                    outstanding[rid]![Int(index)] = -1
                    if outstanding[rid]!.allSatisfy({ $0 == -1 }) { outstanding[rid] = nil }
                    if let progress {
                        let (count, bytes) = await plan.snapshot()
                        progress(count, recipe.chunks.count, bytes)
                    }
                case .chunkMissing(let rid, let index, _):
                    guard let request = outstanding[rid], Int(index) < request.count else {
                        throw WireError(.protocolViolation, "a missing-chunk notice for nothing requested")
                    }
                    misses += 1
                    outstanding[rid]![Int(index)] = -1
                    if outstanding[rid]!.allSatisfy({ $0 == -1 }) { outstanding[rid] = nil }
                    await plan.release(peer: name, reason: nil)
                    // A peer that claims chunks it does not have is not used again for this fetch.
                    throw WireError(.notFound, "the peer claimed chunks it does not have (\(misses))")
                case .error(let code, let text):
                    throw WireError(code, "the peer said: \(text)")
                default:
                    throw WireError(.protocolViolation, "unexpected message type \(message.type) during a fetch")
                }
            }
        } catch {
            try? store.put(pending)
            throw error
        }
        try store.put(pending)
        await plan.release(peer: name, reason: nil)
    }

    func fetchRecipe(_ session: inout PeerSession, address: ContentHash) async throws -> FileRecipe {
        var chunks: [ChunkRef] = []
        var size: UInt64 = 0
        var bits: UInt8 = 0
        var offset: UInt64 = 0
        var total = 1
        while chunks.count < total {
            try await session.send(
                .getRecipe(address: address, start: UInt32(chunks.count), maxCount: UInt32(WireLimits.maxRecipeEntries))
            )
            guard case .recipe(let a, let s, let b, let t, let start, let entries)? = try await session.next(),
                a == address,
                Int(start) == chunks.count, chunks.isEmpty || (s == size && b == bits && Int(t) == total)
            else { throw WireError(.protocolViolation, "a malformed chunk list") }
            size = s
            bits = b
            total = Int(t)
            guard !entries.isEmpty || total == 0 else {
                throw WireError(.protocolViolation, "an empty chunk-list page")
            }
            for (id, length) in entries {
                chunks.append(ChunkRef(id: id, offset: offset, length: length))
                offset += UInt64(length)
            }
            if total == 0 { break }
        }
        guard let chunker = ChunkerParameters(averageBits: Int(bits)) else {
            throw WireError(.protocolViolation, "an unknown chunker")
        }
        let recipe = FileRecipe(address: address, size: size, chunker: chunker, chunks: chunks)
        do { try recipe.validateLayout() } catch {
            throw WireError(.protocolViolation, "a malformed chunk list: \(error)")
        }
        return recipe
    }
}

extension Fetcher {
    /// What a peer sent for a manifest query, not yet trusted: the caller verifies it into its catalog.
    public struct ManifestBundle: Sendable {
        public let envelope: [UInt8]
        public let publisherKey: [UInt8]
        public let entries: [[UInt8]]
        public let checkpoint: String
        public let peer: String
    }

    /// Asks peers in turn for a manifest (by id, or by release name) until one answers.
    public func manifest(_ query: WireMessage, peers: [PeerAddress]) async throws -> ManifestBundle {
        var reasons: [String] = []
        for peer in peers {
            do {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(.seconds(5))
                    .connect(host: peer.host, port: peer.port) { channel in PeerSession.pipeline(channel) }
                let bundle: ManifestBundle? = try await channel.executeThenClose { inbound, outbound in
                    try await PeerSession.handshake(
                        identity: identity, initiator: true, listenPort: 0, inbound: inbound, outbound: outbound
                    ) { session in
                        try await session.send(query)
                        switch try await session.next() {
                        case .manifest(let envelope, let key, let entries, let checkpoint)?:
                            return ManifestBundle(
                                envelope: envelope, publisherKey: key, entries: entries, checkpoint: checkpoint,
                                peer: peer.description)
                        case .error(_, let text)?:
                            reasons.append("\(peer): \(text)")
                            return nil
                        default:
                            reasons.append("\(peer): unexpected answer")
                            return nil
                        }
                    }
                }
                if let bundle { return bundle }
            } catch {
                reasons.append("\(peer): \(error)")
            }
        }
        throw WireError(.notFound, "no peer had it (\(reasons.joined(separator: "; ")))")
    }
}
