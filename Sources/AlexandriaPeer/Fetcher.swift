import AlexandriaCore
import AlexandriaMetrics
import AlexandriaStore
import AlexandriaWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

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

/// Fetches files by address from several peers at once, verifying every chunk before it is written.
public final class Fetcher: @unchecked Sendable {
    public let store: ContentStore
    public let identity: NodeIdentity
    let logger: Logger
    /// No message for this long while requests are outstanding: the peer is stalled.
    public var stallSeconds: Double = 5
    /// A peer that accepts the connection but has not proved its key within this long is dropped.
    public var handshakeTimeoutSeconds = Double(WireLimits.handshakeTimeoutSeconds)
    /// Outstanding GET_CHUNKS per peer, and chunks per request.
    public var window = 4
    public var batch = 16
    /// Copy every received chunk into the store's packs as well, so the file stays servable when the output is moved
    /// or deleted (callers that fetch into a scratch file and delete it, such as replication, need this; it is the
    /// default). Off: every byte is written once, and the store holds the chunks by reference to the output file.
    public var copyIntoStore = true
    /// Per-peer scores kept across fetches; peers that misbehaved before are used only if the others fall short.
    public var scores: PeerScores?
    /// Called once with the chunk list the fetch settled on (already checked against `expectedRoot`), before any chunk
    /// is pulled: lets the HTTP gateway stream chunks to a client in order as they reach the store.
    public var onRecipe: (@Sendable (FileRecipe) -> Void)?
    /// Called with each chunk received from a peer once it is verified, and the peer's address: lets a scrub log
    /// which peer repaired a damaged chunk.
    public var onChunkReceived: (@Sendable (ContentHash, String) -> Void)?
    /// Called with a peer's address when it sent bytes that do not match the chunk asked for (refused): lets the
    /// mirror stop counting that peer as a holder (`MirrorCore.servedBadBytes`).
    public var onBadChunk: (@Sendable (String) -> Void)?

    public init(store: ContentStore, identity: NodeIdentity, logger: Logger) {
        self.store = store
        self.identity = identity
        self.logger = logger
    }

    /// The suffix of the file a fetch assembles beside its output.
    public static let partialSuffix = ".alexandria-partial"

    /// Points chunks linked into a partial file that is gone at the output it was renamed to (a fetch killed between
    /// its rename and recording it), or into a staged release file at the folder it moved to (`ReleaseFetch`). `fetch` runs it first; `verify` too, so a renamed output is not reported damaged.
    @discardableResult
    public static func recoverInterruptedFetches(_ store: ContentStore) throws -> Int {
        try store.relinkMissingFiles { path in
            // A partial file renamed to its output, or a release's staged file moved into its folder (or both).
            let renamed = path.hasSuffix(partialSuffix) ? String(path.dropLast(partialSuffix.count)) : path
            let candidates = [renamed, ReleaseFetch.committedPath(ofStaged: renamed)].compactMap { $0 }
            return candidates.first { $0 != path && FileManager.default.fileExists(atPath: $0) }
        }
    }

    /// Fetches `address` into `path`. Chunks the local store already holds are not downloaded again; every chunk
    /// received is verified before it is written; the file is renamed into place only after its whole SHA-256
    /// matches `address` (and, if given, its chunk list matches `expectedRoot`).
    ///
    /// With `copyIntoStore` off, each byte is written once: received chunks go into the output file, and the store
    /// records them by reference to it (first to the partial file, so an interrupted fetch resumes; then, in the
    /// transaction that registers the file, to its final path). With it on, they go into the packs too. The whole-file
    /// SHA-256 is computed as chunks arrive (`FileHashCursor`), so there is no second pass over the file when they
    /// arrive in order.
    ///
    /// Runs on the node's threads (`NodeExecutor`), so its store and file I/O never blocks the cooperative pool.
    public func fetch(
        _ address: ContentHash, to path: String, peers: [PeerAddress], expectedRoot: ContentHash? = nil,
        progress: (@Sendable (Int, Int, UInt64) -> Void)? = nil
    ) async throws -> FetchReport {
        try await NodeExecutor.shared.run {
            try await fetchOnNode(address, to: path, peers: peers, expectedRoot: expectedRoot, progress: progress)
        }
    }

    func fetchOnNode(
        _ address: ContentHash, to path: String, peers: [PeerAddress], expectedRoot: ContentHash?,
        progress: (@Sendable (Int, Int, UInt64) -> Void)?
    ) async throws -> FetchReport {
        let started = Date()
        let plan = FetchPlan(stallSeconds: stallSeconds)
        let finalPath = OutputFile.absolute(path)
        let temporary = finalPath + Self.partialSuffix
        try Self.recoverInterruptedFetches(store)
        let output = try OutputFile(path: temporary)
        let job = Job(address: address, plan: plan, output: output, expectedRoot: expectedRoot, progress: progress)

        if let recipe = try store.recipe(of: address) {
            // Already here: copied from the store, verified on read; peers only for chunks found damaged.
            _ = await plan.offer(recipe)
            try await fill(job, recipe: recipe)
        } else if peers.isEmpty {
            throw WireError(.notFound, "\(address) is not in the local store and no peer was given (--peer HOST:PORT)")
        }
        if await !plan.isComplete, !peers.isEmpty {
            // Peers that misbehaved in an earlier fetch are held back until the others have done what they can.
            for round in PeerChoice.rounds(peers, scores: scores) {
                if await plan.isComplete { break }
                await withDiscardingTaskGroup { group in
                    for peer in round { group.addTask { await self.work(peer: peer, job: job) } }
                }
            }
        }
        scores?.record(
            used: await plan.received.keys.map { $0 }, misbehaved: await plan.misbehaved.map { $0 })
        if let fatal = await plan.fatal { throw fatal }
        guard let recipe = await plan.recipe else {
            let dropped = await plan.dropped
            throw WireError(
                .notFound,
                "no peer provided \(address): \(dropped.map { PeerError.reason($0.key, $0.value) }.joined(separator: "; "))"
            )
        }
        guard await plan.isComplete, let cursor = job.cursor else {
            let dropped = await plan.dropped
            throw WireError(
                .notFound,
                "the fetch stopped with chunks missing; no remaining peer has them (\(dropped.map { "\($0.key): \($0.value)" }.joined(separator: "; ")))"
            )
        }
        guard try cursor.finish(output: output) == address else {
            output.discard()
            throw WireError(.protocolViolation, "the assembled file does not hash to \(address); nothing was written")
        }
        // Registered before the rename, pointed at the final path after it: a kill at any point leaves either a
        // registered file in the partial (the next fetch checks it in place and downloads nothing) or a renamed one
        // whose links `recoverInterruptedFetches` points at the final path. Never an unregistered complete file.
        if try store.recipe(of: address) == nil { try store.registerFile(recipe) }
        try output.finish(renamingTo: finalPath, sync: store.options.durability == .fsync)
        try store.relink(from: temporary, to: finalPath)
        let (_, downloaded) = await plan.snapshot()
        return FetchReport(
            address: address.description, size: recipe.size, chunks: recipe.chunks.count, bytesDownloaded: downloaded,
            bytesFromLocalStore: job.localBytes.withLock { $0 }, peers: await plan.received,
            droppedPeers: await plan.dropped, seconds: Date().timeIntervalSince(started))
    }

    /// One fetch's shared parts.
    final class Job: @unchecked Sendable {
        let address: ContentHash
        let plan: FetchPlan
        let output: OutputFile
        let expectedRoot: ContentHash?
        let progress: (@Sendable (Int, Int, UInt64) -> Void)?
        /// Set by `fill`, before any peer pulls a chunk.
        var cursor: FileHashCursor?
        let localBytes = Mutex<UInt64>(0)

        init(
            address: ContentHash, plan: FetchPlan, output: OutputFile, expectedRoot: ContentHash?,
            progress: (@Sendable (Int, Int, UInt64) -> Void)?
        ) {
            self.address = address
            self.plan = plan
            self.output = output
            self.expectedRoot = expectedRoot
            self.progress = progress
        }
    }

    /// Puts the chunks the local store already holds into the output, in file order, and starts the plan. A chunk an
    /// interrupted fetch left in the partial file is checked where it is and not written again; others are read from
    /// the store (verified). A chunk that fails either way is left to the peers.
    func fill(_ job: Job, recipe: FileRecipe) async throws {
        onRecipe?(recipe)
        let cursor = FileHashCursor(recipe: recipe)
        job.cursor = cursor
        var held = Set<Int>()
        do {
            try job.output.prepare(size: recipe.size)
            let inStore = try store.holds(recipe.chunks.map(\.id))
            var offsets: [ContentHash: [UInt64]] = [:]
            for chunk in recipe.chunks { offsets[chunk.id, default: []].append(chunk.offset) }
            var copied = Set<ContentHash>()
            var localBytes: UInt64 = 0
            for (i, chunk) in recipe.chunks.enumerated() where inStore.contains(chunk.id) {
                if copied.contains(chunk.id) {
                    held.insert(i)
                    continue
                }
                if job.output.initialSize > 0, chunk.end <= job.output.initialSize,
                    try job.output.read(at: chunk.offset, length: Int(chunk.length), { cursor.verify(chunk.id, $0) })
                {
                    // Left by an interrupted fetch and intact; its other positions (if any) get the bytes too.
                    let others = (offsets[chunk.id] ?? []).filter { $0 != chunk.offset }
                    if others.isEmpty {
                        try cursor.written(chunk.id, nil, output: job.output)
                    } else {
                        let bytes = try job.output.read(at: chunk.offset, length: Int(chunk.length)) { Array($0) }
                        try job.output.write(bytes, at: others)
                        try cursor.written(chunk.id, bytes, output: job.output)
                    }
                    localBytes += UInt64(chunk.length)
                } else {
                    guard let bytes = try? store.chunk(chunk.id),
                        bytes.withUnsafeBytes({ cursor.verify(chunk.id, $0) })
                    else { continue }
                    try job.output.write(bytes, at: offsets[chunk.id] ?? [])
                    try cursor.written(chunk.id, bytes, output: job.output)
                    localBytes += UInt64(bytes.count)
                }
                copied.insert(chunk.id)
                held.insert(i)
            }
            job.localBytes.withLock { $0 = localBytes }
        } catch {
            await job.plan.fail(error)
            throw error
        }
        await job.plan.start(alreadyHeld: held)
    }

    /// One peer's share of the work, from connecting to running out of chunks.
    func work(peer: PeerAddress, job: Job) async {
        let name = peer.description
        do {
            let channel: NIOAsyncChannel<WireMessage, WireMessage>
            do {
                channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                    .connectTimeout(.seconds(5))
                    .connect(host: peer.host, port: peer.port) { channel in PeerSession.pipeline(channel) }
            } catch {
                throw PeerError.connect(to: name, error)
            }
            try await channel.executeThenClose { inbound, outbound in
                try await PeerSession.handshake(
                    identity: identity, initiator: true, listenPort: 0, channel: channel.channel,
                    timeoutSeconds: handshakeTimeoutSeconds, inbound: inbound, outbound: outbound
                ) { session in
                    try await self.exchange(&session, channel: channel.channel, name: name, job: job)
                }
            }
        } catch {
            logger.info("peer dropped", metadata: ["peer.address": "\(name)", "error": "\(error)"])
            await job.plan.release(peer: name, reason: PeerError.reason(name, error))
        }
        await job.plan.giveUpWaiting()
    }

    func exchange(_ session: inout PeerSession, channel: Channel, name: String, job: Job) async throws {
        let plan = job.plan
        let address = job.address
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
            if let expectedRoot = job.expectedRoot, recipe.merkleRoot != expectedRoot {
                await plan.penalize(name)
                throw WireError(.protocolViolation, "the peer's chunk list does not match the manifest's Merkle root")
            }
            let (accepted, first) = await plan.offer(recipe)
            guard accepted else {
                throw WireError(.protocolViolation, "the peer's chunk list differs from the one already chosen")
            }
            if first {
                // Copying local chunks is not a stall of this peer.
                watchdog.cancel()
                try await fill(job, recipe: recipe)
            }
        }
        // Waiting for another peer's chunk list is not a stall of this one: no watchdog while we wait.
        watchdog.cancel()
        guard let recipe = await plan.waitForStart(), let cursor = job.cursor else { return }
        rearm()
        let output = job.output
        let linkPath = output.path
        // Where each distinct chunk goes in the file (a chunk can repeat).
        var offsets: [ContentHash: [UInt64]] = [:]
        for chunk in recipe.chunks { offsets[chunk.id, default: []].append(chunk.offset) }
        let decoder = ChunkDecoder()
        var outstanding: [UInt32: [Int]] = [:]
        var nextRequest: UInt32 = 1
        var pending: [VerifiedChunk] = []
        var links: [LinkedChunk] = []
        var misses = 0
        var lastSent = Date()
        var pingOutstanding: UInt64?
        func flush() throws {
            if copyIntoStore { try store.put(pending) } else { try store.link(links, inFile: linkPath) }
            pending.removeAll()
            links.removeAll()
        }
        // Whatever happens to this peer, the chunks it already delivered (verified, and counted as done) are stored.
        do {
            while true {
                // Read before looking at the plan, so an event between the look and the wait below is not missed.
                let generation = plan.changes.generation
                while outstanding.count < window {
                    let indices = await plan.take(peer: name, count: batch) { availability.has(chunk: $0) }
                    if indices.isEmpty { break }
                    outstanding[nextRequest] = indices
                    try await session.send(
                        .getChunks(requestID: nextRequest, ids: indices.map { recipe.chunks[$0].id }))
                    lastSent = Date()
                    nextRequest &+= 1
                }
                if outstanding.isEmpty {
                    if await plan.isComplete { break }
                    if await plan.fatal != nil { break }
                    // Others are still working; wait a little and look again (end game: take over stalled chunks).
                    try flush()
                    // Keepalive: a quiet connection still carries a frame within the peer's idle timeout.
                    if pingOutstanding == nil,
                        Date().timeIntervalSince(lastSent) > Double(WireLimits.idleTimeoutSeconds) / 2
                    {
                        let nonce = UInt64.random(in: 0...UInt64.max)
                        try await session.send(.ping(nonce))
                        pingOutstanding = nonce
                        lastSent = Date()
                    }
                    // Nothing to ask this peer for: wait for an event (another peer failed and its chunks are free,
                    // the fetch completed or failed) or a timer (a chunk another peer holds may be taken over, or the
                    // keepalive is due). Having nothing outstanding is not a stall of this peer.
                    watchdog.cancel()
                    let takeover = await plan.nextTakeover(for: name) { availability.has(chunk: $0) }
                    var wake = takeover.map { plan.origin + .milliseconds(Int64($0 * 1000) + 1) }
                    if pingOutstanding == nil {
                        let keepalive =
                            ContinuousClock.now
                            + .milliseconds(
                                Int64(
                                    (Double(WireLimits.idleTimeoutSeconds) / 2 - Date().timeIntervalSince(lastSent))
                                        * 1000))
                        wake = min(wake ?? keepalive, keepalive)
                    }
                    await plan.changes.wait(after: generation, until: wake)
                    try Task.checkCancellation()
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
                    guard let request = outstanding[rid], Int(index) < request.count, request[Int(index)] >= 0 else {
                        await plan.penalize(name)
                        throw WireError(.protocolViolation, "a chunk that was not requested")
                    }
                    let fileIndex = request[Int(index)]
                    guard recipe.chunks[fileIndex].id == id, Int(rawLength) == Int(recipe.chunks[fileIndex].length),
                        let bytes = decoder.decode(codec: codec, payload: payload, rawLength: Int(rawLength)),
                        bytes.withUnsafeBytes({ cursor.verify(id, $0) })
                    else {
                        NodeMetrics.chunk(verified: false, source: .peer)
                        onBadChunk?(name)
                        await plan.penalize(name)
                        throw WireError(.protocolViolation, "the peer sent bytes that do not match chunk \(id)")
                    }
                    NodeMetrics.chunk(verified: true, source: .peer)
                    NodeMetrics.fetched(bytes: bytes.count)
                    // Verified: only now do the bytes reach the output (and, by reference or copy, the store).
                    try output.write(bytes, at: offsets[id] ?? [])
                    try cursor.written(id, bytes, output: output)
                    onChunkReceived?(id, name)
                    if copyIntoStore {
                        guard let verified = VerifiedChunk(id: id, bytes: bytes) else {
                            throw WireError(.protocolViolation, "chunk \(id) changed in memory")
                        }
                        pending.append(verified)
                    } else {
                        links.append(
                            LinkedChunk(id: id, offset: recipe.chunks[fileIndex].offset, length: bytes.count))
                    }
                    if pending.count + links.count >= 32 { try flush() }
                    _ = await plan.complete([fileIndex], peer: name, bytes: UInt64(bytes.count))
                    outstanding[rid]![Int(index)] = -1
                    if outstanding[rid]!.allSatisfy({ $0 == -1 }) { outstanding[rid] = nil }
                    if let progress = job.progress {
                        let (count, bytes) = await plan.snapshot()
                        progress(count, recipe.chunks.count, bytes)
                    }
                case .chunkMissing(let rid, let index, _):
                    guard let request = outstanding[rid], Int(index) < request.count else {
                        await plan.penalize(name)
                        throw WireError(.protocolViolation, "a missing-chunk notice for nothing requested")
                    }
                    misses += 1
                    outstanding[rid]![Int(index)] = -1
                    if outstanding[rid]!.allSatisfy({ $0 == -1 }) { outstanding[rid] = nil }
                    await plan.release(peer: name, reason: nil)
                    await plan.penalize(name)
                    // A peer that claims chunks it does not have is not used again for this fetch.
                    throw WireError(.notFound, "the peer claimed chunks it does not have (\(misses))")
                case .pong(let nonce):
                    guard nonce == pingOutstanding else { throw WireError(.protocolViolation, "an unrequested PONG") }
                    pingOutstanding = nil
                case .ping(let nonce):
                    try await session.send(.pong(nonce))
                case .error(let code, let text):
                    throw WireError(code, "the peer said: \(text)")
                default:
                    throw WireError(.protocolViolation, "unexpected message type \(message.type) during a fetch")
                }
            }
        } catch {
            try? flush()
            throw error
        }
        try flush()
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
        try await NodeExecutor.shared.run { try await manifestOnNode(query, peers: peers) }
    }

    func manifestOnNode(_ query: WireMessage, peers: [PeerAddress]) async throws -> ManifestBundle {
        var reasons: [String] = []
        for peer in peers {
            do {
                let channel: NIOAsyncChannel<WireMessage, WireMessage>
                do {
                    channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                        .connectTimeout(.seconds(5))
                        .connect(host: peer.host, port: peer.port) { channel in PeerSession.pipeline(channel) }
                } catch {
                    throw PeerError.connect(to: peer.description, error)
                }
                let bundle: ManifestBundle? = try await channel.executeThenClose { inbound, outbound in
                    return try await PeerSession.handshake(
                        identity: identity, initiator: true, listenPort: 0, channel: channel.channel,
                        timeoutSeconds: handshakeTimeoutSeconds, inbound: inbound, outbound: outbound
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
                reasons.append(PeerError.reason(peer.description, error))
            }
        }
        throw WireError(.notFound, "no peer had it (\(reasons.joined(separator: "; ")))")
    }
}
