import ServiceLifecycle
import Synchronization

/// The gossip half of a node as a `Service`: it waits for the server to listen (it dials and is dialled through it),
/// then runs `GossipNode` until graceful shutdown or cancellation, and finally closes every gossip link and takes no
/// new one.
///
/// Put it after the `PeerServer` in the `ServiceGroup`: the group shuts services down in reverse order, so the links
/// close before the server waits for its connections to end.
public struct GossipService: Service {
    public let node: GossipNode
    public let server: PeerServer

    public init(node: GossipNode, server: PeerServer) {
        self.node = node
        self.server = server
        server.gossip = node
    }

    public func run() async throws {
        await NodeExecutor.shared.run {
            guard let port = await server.listeningPort() else {
                // The server failed to bind and throws its clear error (the address, what to do), which ends the
                // group. Returning now would race it with "a service finished unexpectedly"; wait to be ended.
                try? await gracefulShutdown()
                return
            }
            await node.attach(server: server, port: port)
            await cancelWhenGracefulShutdown { [node] in await node.run() }
            await node.stop()
        }
    }
}

/// The replication half of a node as a `Service`: the mirror's rounds until graceful shutdown or cancellation (a
/// round in progress is cancelled, and a cancelled round loses nothing: every write it makes is verified first).
public struct MirrorService: Service {
    public let mirror: Mirror

    public init(mirror: Mirror) { self.mirror = mirror }

    public func run() async throws {
        await NodeExecutor.shared.run {
            await cancelWhenGracefulShutdown { [mirror] in await mirror.run() }
        }
    }
}

/// A value set once, awaited by any number of tasks.
final class OnceValue<Value: Sendable>: Sendable {
    private let state = Mutex<(value: Value?, waiters: [CheckedContinuation<Value, Never>])>((nil, []))

    /// Sets the value and wakes every waiter; later calls are ignored.
    func set(_ value: Value) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value, Never>] in
            guard state.value == nil else { return [] }
            state.value = value
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    /// The value, waiting until it is set.
    func value() async -> Value {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Value? in
                if let value = state.value { return value }
                state.waiters.append(continuation)
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
    }
}
