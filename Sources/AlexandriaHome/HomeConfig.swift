import AlexandriaCore
import AlexandriaStore

/// The settings in `<home>/config.toml`. Unknown tables or keys are errors, so a typo never passes silently.
public struct HomeConfig: Sendable {
    /// `[store] budget`: the most the packs may hold; nil for no limit.
    public var storeBudget: UInt64?
    /// `[store] durability`: "os" or "fsync" (see `Durability`).
    public var durability: Durability = .os
    /// `[store] lock_timeout`: seconds to wait for another writer.
    public var lockTimeoutSeconds = 30
    /// `[store] chunk_average`: the chunker's average size, a power of two from 4 KiB to 4 MiB. Files are cut with
    /// the chunker in force when they are added; chunks only deduplicate against files cut the same way.
    public var chunker: ChunkerParameters = .v1
    /// `[node] listen`: where `node run` accepts peers.
    public var listen = "127.0.0.1:7420"
    /// `[node] peers`: bootstrap peers, `host:port`.
    public var peers: [String] = []

    public init() {}

    public static let defaultText = """
        # Alexandria node configuration. Flags given on the command line override these values.

        [store]
        # The most the store may hold on disk ("0" means no limit). Examples: "500 GiB", "2 TB".
        budget = "0"
        # "os": chunk bytes reach the page cache before the index commits (a crashed process loses nothing; a power
        #       loss can lose the newest chunks, which reads then report as missing rather than serve).
        # "fsync": every add syncs the packs to disk before it commits (durable across power loss; slower).
        durability = "os"
        # Seconds to wait for another process that is writing to the store.
        lock_timeout = 30
        # Average chunk size (a power of two, 4 KiB to 4 MiB). Changing it stops new files deduplicating against
        # files already stored; the default is what the network uses.
        chunk_average = "256 KiB"

        [node]
        # Where `alexandria node run` listens for peers (wire protocol v1; see Protocol/wire-v1.md).
        listen = "127.0.0.1:7420"
        # Peers to fetch from and connect to, as "host:port".
        peers = []

        """

    public init(toml: TOMLSubset) throws {
        let known: [String: Set<String>] = [
            "": [], "store": ["budget", "durability", "lock_timeout", "chunk_average"], "node": ["listen", "peers"],
        ]
        for (table, values) in toml.tables {
            guard let keys = known[table] else { throw HomeError("unknown table [\(table)]") }
            for key in values.keys where !keys.contains(key) {
                throw HomeError("unknown setting '\(key)' in [\(table)]")
            }
        }
        switch toml["store", "budget"] {
        case nil: break
        case .string(let text)?:
            guard let bytes = ByteSize.parse(text) else { throw HomeError("[store] budget '\(text)' is not a size") }
            storeBudget = bytes == 0 ? nil : bytes
        case .integer(let n)? where n >= 0:
            storeBudget = n == 0 ? nil : UInt64(n)
        default: throw HomeError("[store] budget must be a size such as \"500 GiB\"")
        }
        switch toml["store", "durability"] {
        case nil: break
        case .string(let text)?:
            guard let d = Durability(rawValue: text) else {
                throw HomeError("[store] durability must be \"os\" or \"fsync\", not \"\(text)\"")
            }
            durability = d
        default: throw HomeError("[store] durability must be \"os\" or \"fsync\"")
        }
        switch toml["store", "chunk_average"] {
        case nil: break
        case .string(let text)?:
            guard let bytes = ByteSize.parse(text), bytes > 0, bytes.nonzeroBitCount == 1,
                let parameters = ChunkerParameters(averageBits: bytes.trailingZeroBitCount)
            else {
                throw HomeError("[store] chunk_average must be a power of two from 4 KiB to 4 MiB, not \"\(text)\"")
            }
            chunker = parameters
        default: throw HomeError("[store] chunk_average must be a size such as \"256 KiB\"")
        }
        switch toml["node", "listen"] {
        case nil: break
        case .string(let text)?: listen = text
        default: throw HomeError("[node] listen must be \"host:port\"")
        }
        switch toml["node", "peers"] {
        case nil: break
        case .array(let items)?:
            peers = try items.map { item in
                guard case .string(let s) = item else { throw HomeError("[node] peers must be strings \"host:port\"") }
                return s
            }
        default: throw HomeError("[node] peers must be an array of \"host:port\"")
        }
        switch toml["store", "lock_timeout"] {
        case nil: break
        case .integer(let n)? where n >= 0 && n <= 86400: lockTimeoutSeconds = n
        default: throw HomeError("[store] lock_timeout must be a number of seconds (0...86400)")
        }
    }

    public var storeOptions: StoreOptions {
        var options = StoreOptions()
        options.budgetBytes = storeBudget
        options.durability = durability
        options.lockTimeoutSeconds = Double(lockTimeoutSeconds)
        options.chunker = chunker
        options.busyTimeoutMilliseconds = Int32(min(lockTimeoutSeconds * 1000, Int(Int32.max)))
        return options
    }
}
