import AlexandriaCore
import AlexandriaHome
import AlexandriaStore
import ArgumentParser

struct Cat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a stored file's verified bytes (or a byte range) to stdout.",
        discussion: "Every chunk is hashed before any of its bytes is written; a damaged chunk stops the output.")

    @OptionGroup var options: HomeOptions

    @Option(help: "Bytes A through B inclusive (as in HTTP), or A- for the rest of the file.")
    var range: String?

    @Argument(help: "The file's address: sha256:<64 hex> (or the bare hex).")
    var address: String

    func validate() throws {
        guard ContentHash(userInput: address) != nil else {
            throw ValidationError("'\(address)' is not a sha256:<64 hex> address")
        }
        if let range, ByteRangeSpec(range) == nil {
            throw ValidationError("--range takes A-B (inclusive) or A-, with A <= B; got '\(range)'")
        }
    }

    func run() throws {
        let hash = ContentHash(userInput: address)!
        let store = try options.resolved.openStore()
        var wanted: Range<UInt64>?
        if let range, let spec = ByteRangeSpec(range) {
            guard let recipe = try store.recipe(of: hash) else {
                throw StoreError(.unknownAddress, "this store has no file \(hash); `alexandria add` it or fetch it")
            }
            guard spec.first < recipe.size || (spec.first == 0 && recipe.size == 0) else {
                throw CommandFailure(
                    message: "--range \(range) starts past the end of \(hash), which has \(recipe.size) bytes")
            }
            wanted = spec.first..<min(recipe.size, spec.last.map { $0 + 1 } ?? recipe.size)
        }
        try store.read(hash, range: wanted) { bytes in try Output.write(1, bytes) }
    }
}

/// `A-B` (inclusive) or `A-`.
struct ByteRangeSpec {
    let first: UInt64
    let last: UInt64?

    init?(_ text: String) {
        let parts = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let a = UInt64(parts[0]) else { return nil }
        if parts[1].isEmpty {
            last = nil
        } else {
            guard let b = UInt64(parts[1]), b >= a else { return nil }
            last = b
        }
        first = a
    }
}
