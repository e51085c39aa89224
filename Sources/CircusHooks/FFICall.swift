// A call to any exported C function through libffi, with the types a declared hook
// signature gave (`lib.so:fn(pid: int, signum: int) -> bool`). The call interface is
// prepared once; each call lays the hook's arguments out in 8-byte slots.

import CFFI
import CircusConfig
import Glibc

final class FFICall: @unchecked Sendable {
    // Allocated once and never freed (a hook lives as long as the daemon); libffi only
    // reads them during calls.
    private let cif: UnsafeMutablePointer<ffi_cif>
    private let argumentTypes: UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>
    private let function: @convention(c) () -> Void
    private let signature: HookSignature

    init?(signature: HookSignature, function: UnsafeMutableRawPointer) {
        let count = signature.parameters.count
        self.signature = signature
        self.function = unsafeBitCast(function, to: (@convention(c) () -> Void).self)
        cif = .allocate(capacity: 1)
        argumentTypes = .allocate(capacity: max(count, 1))
        for (i, parameter) in signature.parameters.enumerated() {
            argumentTypes[i] = Self.ffiType(parameter.type)
        }
        let status = ffi_prep_cif(cif, FFI_DEFAULT_ABI, UInt32(count), Self.ffiType(signature.returnType), argumentTypes)
        guard status == FFI_OK else { return nil }
    }

    private static func ffiType(_ type: HookCType) -> UnsafeMutablePointer<ffi_type> {
        switch type {
        case .void: circus_ffi_void()
        case .bool: circus_ffi_uint8()
        case .int32: circus_ffi_sint32()
        case .uint32: circus_ffi_uint32()
        case .int64: circus_ffi_sint64()
        case .long: circus_ffi_slong()
        case .uint64: circus_ffi_uint64()
        case .double: circus_ffi_double()
        case .float: circus_ffi_float()
        case .string: circus_ffi_pointer()
        }
    }

    func call(_ invocation: HookInvocation) -> HookOutcome {
        let count = signature.parameters.count
        // One 8-byte slot per argument, and the strings they point at, alive for the call.
        let slots = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 8, alignment: 8)
        let pointers = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: max(count, 1))
        var strings: [UnsafeMutablePointer<CChar>] = []
        defer {
            strings.forEach { free($0) }
            slots.deallocate()
            pointers.deallocate()
        }
        for (i, parameter) in signature.parameters.enumerated() {
            let slot = slots + i * 8
            pointers[i] = slot
            switch parameter.argument.kind {
            case .string:
                let copy = strdup(Self.text(parameter.argument, invocation))!
                strings.append(copy)
                slot.storeBytes(of: UnsafePointer(copy), as: UnsafePointer<CChar>.self)
            case .real:
                let value = invocation.time ?? 0
                if parameter.type == .float {
                    slot.storeBytes(of: Float(value), as: Float.self)
                } else {
                    slot.storeBytes(of: value, as: Double.self)
                }
            case .integer:
                let value = Self.integer(parameter.argument, invocation)
                switch parameter.type {
                case .int32: slot.storeBytes(of: Int32(truncatingIfNeeded: value), as: Int32.self)
                case .uint32: slot.storeBytes(of: UInt32(truncatingIfNeeded: value), as: UInt32.self)
                case .uint64: slot.storeBytes(of: UInt64(bitPattern: value), as: UInt64.self)
                default: slot.storeBytes(of: value, as: Int64.self)
                }
            }
        }
        // libffi widens integer results to a full ffi_arg (8 bytes here).
        var result: UInt64 = 0
        ffi_call(cif, function, &result, pointers)
        switch signature.returnType {
        case .void:
            return .returned(false)
        case .bool:
            return .returned(result & 0xff != 0)
        case .uint32, .uint64:
            return .returned(result != 0)
        default:
            let value = signature.returnType == .int32 ? Int64(Int32(truncatingIfNeeded: result)) : Int64(bitPattern: result)
            if value < 0 { return .failed("\(invocation.point.rawValue) hook returned \(value)") }
            return .returned(value != 0)
        }
    }

    private static func text(_ argument: HookArgument, _ invocation: HookInvocation) -> String {
        switch argument {
        case .watcher: invocation.watcher
        case .hookName: invocation.point.rawValue
        case .stats: invocation.stats ?? "{}"
        default: ""
        }
    }

    private static func integer(_ argument: HookArgument, _ invocation: HookInvocation) -> Int64 {
        switch argument {
        case .pid, .processPid: Int64(invocation.pid ?? 0)
        case .signum: Int64(invocation.signum ?? 0)
        case .exitCode: Int64(invocation.exitCode ?? 0)
        case .processStatus: Int64(invocation.processStatus ?? -1)
        default: 0
        }
    }
}
