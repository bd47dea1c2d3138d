import AlexandriaCatalog
import AlexandriaHome
import AlexandriaManifest
import AlexandriaObjectStore
import AlexandriaPeer
import AlexandriaStore
import AlexandriaWire
import ArgumentParser

#if canImport(Glibc)
    import Glibc
#endif

/// `alexandria`: one executable, a thin shell over the modules. Exit codes: 0 success, 1 a check failed,
/// 2 a usage error, 3 any other failure (the message says what went wrong and what to do).
@main
struct Alexandria: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alexandria",
        abstract: "A content-addressed, tamper-evident registry for ML model weights.",
        discussion: """
            Every byte is named by its SHA-256: a file's address is the same value as `sha256sum`, a Hugging Face \
            LFS oid or an OCI blob digest. The home (--home, else $ALEXANDRIA_HOME, else ~/.alexandria) holds the \
            store, the config and the keys.
            """,
        version: "0.1.0",
        subcommands: [
            Init.self, Add.self, Cat.self, List.self, Remove.self, Verify.self, GC.self, Status.self,
            Keys.self, Publish.self, Yank.self, Unyank.self, Deprecate.self, Advise.self, Audit.self, ExportOMS.self,
            Fetch.self, Sync.self, Node.self, Peers.self, Pin.self, Unpin.self,
        ]
    )

    static func main() async {
        signal(SIGPIPE, SIG_IGN)
        boundMallocRetention()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(with: error)
        }
    }

    /// glibc keeps freed memory in one arena per thread and raises its mmap threshold after large frees, so a node
    /// moving 1 MiB chunks on many threads holds on to hundreds of MB it no longer uses (measured: 292 MB peak with 8
    /// fetchers). Two arenas and a fixed 256 KiB mmap threshold (chunk buffers go back to the kernel when freed) halve
    /// that. Environment variables (MALLOC_ARENA_MAX, …) still override, as glibc reads them first.
    static func boundMallocRetention() {
        // glibc's <malloc.h> values: M_TRIM_THRESHOLD -1, M_MMAP_THRESHOLD -3, M_ARENA_MAX -8.
        if getenv("MALLOC_ARENA_MAX") == nil { _ = c_mallopt(-8, 2) }
        if getenv("MALLOC_MMAP_THRESHOLD_") == nil { _ = c_mallopt(-3, 256 * 1024) }
        if getenv("MALLOC_TRIM_THRESHOLD_") == nil { _ = c_mallopt(-1, 1 << 20) }
    }

    /// Prints `error` the way users should see it and exits with the documented code.
    static func exit(with error: Error) -> Never {
        switch error {
        case let code as ExitCode:
            Glibc.exit(code.rawValue)
        case let failure as CommandFailure:
            Output.error(failure.message)
            Glibc.exit(failure.exitCode)
        case let error as StoreError:
            Output.error(error.message)
            Glibc.exit(3)
        case let error as HomeError:
            Output.error(error.message)
            Glibc.exit(3)
        case let error as ManifestError:
            Output.error(error.message)
            Glibc.exit(3)
        case let error as WireError:
            Output.error(error.message)
            Glibc.exit(3)
        case let error as CatalogError:
            Output.error(error.message)
            // A contested release that nothing settles is the overwrite attempt `audit` reports with 6.
            Glibc.exit(error.code == .contested ? 6 : 3)
        case let error as PeerError:
            Output.error(error.message)
            Glibc.exit(3)
        case let error as ObjectStoreError:
            Output.error(error.message)
            Glibc.exit(3)
        default:
            let code = exitCode(for: error)
            // One prefix everywhere: the argument parser's messages start with "Error: ".
            var message = fullMessage(for: error)
            if message.hasPrefix("Error: ") { message = String(message.dropFirst("Error: ".count)) }
            if code == .success {
                if !message.isEmpty { print(message) }
                Glibc.exit(0)
            }
            if code == .validationFailure {
                Output.error(message)
                Glibc.exit(2)
            }
            Output.error(message.isEmpty ? String(describing: error) : message)
            Glibc.exit(3)
        }
    }
}

/// A failure with a message and a specific exit code.
struct CommandFailure: Error {
    let message: String
    var exitCode: Int32 = 3
}

/// `--home DIR`, shared by every command.
struct HomeOptions: ParsableArguments {
    @Option(name: .long, help: "The node's home (default: $ALEXANDRIA_HOME, else ~/.alexandria).")
    var home: String?

    var resolved: Home { Home.resolve(home) }
}

/// glibc's `mallopt(3)`; <malloc.h> is not part of the Glibc module.
@_silgen_name("mallopt")
func c_mallopt(_ parameter: Int32, _ value: Int32) -> Int32
