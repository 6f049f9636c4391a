use crate::vm::mmio::decode::{
    CpuMode, DecodeErrorKind, Extension, MmioInstruction, MmioOperation, RegisterOperand, decode,
};

use CpuMode::{Bits16, Bits32, Bits64};

fn ok(bytes: &[u8], mode: CpuMode) -> MmioInstruction {
    decode(bytes, mode).unwrap_or_else(|e| panic!("{e}"))
}

fn low(number: u8) -> RegisterOperand {
    RegisterOperand::Low { number }
}

fn read(dest: RegisterOperand, dest_size: u8, extension: Extension) -> MmioOperation {
    MmioOperation::Read {
        dest,
        dest_size,
        extension,
    }
}

#[test]
fn mov_load_and_store_sizes_in_64bit_mode() {
    // mov eax, [rdi]
    let i = ok(&[0x8b, 0x07], Bits64);
    assert_eq!((i.len, i.size), (2, 4));
    assert_eq!(i.operation, read(low(0), 4, Extension::None));
    // mov [rdi], ecx
    let i = ok(&[0x89, 0x0f], Bits64);
    assert_eq!((i.len, i.size), (2, 4));
    assert_eq!(i.operation, MmioOperation::WriteRegister { src: low(1) });
    // mov rax, [rdi] (REX.W)
    assert_eq!(ok(&[0x48, 0x8b, 0x07], Bits64).size, 8);
    // mov ax, [rdi] (66)
    assert_eq!(ok(&[0x66, 0x8b, 0x07], Bits64).size, 2);
    // REX.W wins over 66.
    assert_eq!(ok(&[0x66, 0x48, 0x8b, 0x07], Bits64).size, 8);
    // mov [rsi], r9b (REX.R) and mov r10d, [rax] (REX.R)
    let i = ok(&[0x44, 0x88, 0x0e], Bits64);
    assert_eq!(
        (i.size, i.operation),
        (1, MmioOperation::WriteRegister { src: low(9) })
    );
    let i = ok(&[0x44, 0x8b, 0x10], Bits64);
    assert_eq!(i.operation, read(low(10), 4, Extension::None));
}

#[test]
fn byte_registers_4_to_7_are_high_bytes_without_rex() {
    // mov [rdi], ah
    let i = ok(&[0x88, 0x27], Bits64);
    assert_eq!(
        i.operation,
        MmioOperation::WriteRegister {
            src: RegisterOperand::HighByte { number: 0 }
        }
    );
    // mov [rdi], spl (empty REX makes it SPL)
    let i = ok(&[0x40, 0x88, 0x27], Bits64);
    assert_eq!(i.operation, MmioOperation::WriteRegister { src: low(4) });
    // mov bh, [rax]
    let i = ok(&[0x8a, 0x38], Bits32);
    assert_eq!(
        i.operation,
        read(RegisterOperand::HighByte { number: 3 }, 1, Extension::None)
    );
}

#[test]
fn modrm_sib_and_displacements_give_the_length() {
    // mov eax, [rip + disp32]
    assert_eq!(ok(&[0x8b, 0x05, 1, 2, 3, 4], Bits64).len, 6);
    // mov eax, [rax + disp8]
    assert_eq!(ok(&[0x8b, 0x40, 0x30], Bits64).len, 3);
    // mov eax, [rax + disp32]
    assert_eq!(ok(&[0x8b, 0x80, 0x30, 0, 0, 0], Bits64).len, 6);
    // mov eax, [rax + rcx*4] (SIB)
    assert_eq!(ok(&[0x8b, 0x04, 0x88], Bits64).len, 3);
    // mov eax, [rcx*4 + disp32] (SIB base 101, mod 00)
    assert_eq!(ok(&[0x8b, 0x04, 0x8d, 0, 0, 0xe0, 0xfe], Bits64).len, 7);
    // mov eax, [rsp + disp8] (SIB, mod 01)
    assert_eq!(ok(&[0x8b, 0x44, 0x24, 0x10], Bits64).len, 4);
    // mov eax, [disp32] in 32-bit mode (no RIP-relative there, same length)
    assert_eq!(ok(&[0x8b, 0x05, 0, 0, 0xc0, 0xfe], Bits32).len, 6);
}

#[test]
fn sixteen_bit_addressing() {
    // 16-bit mode: mov ax, [disp16]
    let i = ok(&[0x8b, 0x06, 0x00, 0x10], Bits16);
    assert_eq!((i.len, i.size), (4, 2));
    // mov eax, [bx+si] with 66
    let i = ok(&[0x66, 0x8b, 0x00], Bits16);
    assert_eq!((i.len, i.size), (3, 4));
    // 67 in 32-bit mode selects 16-bit addressing: [bp + disp8]
    assert_eq!(ok(&[0x67, 0x8b, 0x46, 0x02], Bits32).len, 4);
    // 67 in 16-bit mode selects 32-bit addressing: SIB + disp32
    assert_eq!(
        ok(&[0x67, 0x8b, 0x04, 0x25, 0, 0, 0xc0, 0xfe], Bits16).len,
        8
    );
}

#[test]
fn rex_bytes_are_inc_dec_outside_64bit_mode() {
    // In 32-bit mode 0x48 is DEC EAX: not a move.
    assert_eq!(
        decode(&[0x48, 0x8b, 0x07], Bits32).unwrap_err().kind,
        DecodeErrorKind::UnsupportedOpcode
    );
}

#[test]
fn immediates_are_sized_and_sign_extended() {
    // mov byte [rdi], 0x80
    let i = ok(&[0xc6, 0x07, 0x80], Bits64);
    assert_eq!((i.len, i.size), (3, 1));
    assert_eq!(i.operation, MmioOperation::WriteImmediate { value: 0x80 });
    // mov dword [rdi+8], 0xfee00000
    let i = ok(&[0xc7, 0x47, 0x08, 0x00, 0x00, 0xe0, 0xfe], Bits64);
    assert_eq!((i.len, i.size), (7, 4));
    assert_eq!(
        i.operation,
        MmioOperation::WriteImmediate { value: 0xfee0_0000 }
    );
    // mov qword [rdi], -1 (imm32 sign-extended)
    let i = ok(&[0x48, 0xc7, 0x07, 0xff, 0xff, 0xff, 0xff], Bits64);
    assert_eq!(
        i.operation,
        MmioOperation::WriteImmediate { value: u64::MAX }
    );
    // mov word [rdi], 0x1234
    let i = ok(&[0x66, 0xc7, 0x07, 0x34, 0x12], Bits64);
    assert_eq!((i.len, i.size), (5, 2));
    assert_eq!(i.operation, MmioOperation::WriteImmediate { value: 0x1234 });
    // mov dword [rip+disp32], imm32: the displacement comes before the immediate.
    let i = ok(&[0xc7, 0x05, 1, 0, 0, 0, 0x78, 0x56, 0x34, 0x12], Bits64);
    assert_eq!(
        (i.len, i.operation),
        (10, MmioOperation::WriteImmediate { value: 0x1234_5678 })
    );
}

#[test]
fn movzx_and_movsx() {
    // movzx eax, byte [rdi]
    let i = ok(&[0x0f, 0xb6, 0x07], Bits64);
    assert_eq!((i.len, i.size), (3, 1));
    assert_eq!(i.operation, read(low(0), 4, Extension::Zero));
    // movzx ecx, word [rdi]
    let i = ok(&[0x0f, 0xb7, 0x0f], Bits64);
    assert_eq!((i.size, i.operation), (2, read(low(1), 4, Extension::Zero)));
    // movsx rax, byte [rdi]
    let i = ok(&[0x48, 0x0f, 0xbe, 0x07], Bits64);
    assert_eq!((i.size, i.operation), (1, read(low(0), 8, Extension::Sign)));
    // movsx ax, word... (0F BF with 66: 16-bit destination)
    let i = ok(&[0x66, 0x0f, 0xbf, 0x07], Bits64);
    assert_eq!((i.size, i.operation), (2, read(low(0), 2, Extension::Sign)));
    // movzx esp... with byte source: no high-byte register for the destination
    let i = ok(&[0x0f, 0xb6, 0x27], Bits64);
    assert_eq!(i.operation, read(low(4), 4, Extension::Zero));
}

#[test]
fn refusals_name_the_bytes() {
    let e = decode(&[0x0f, 0xae, 0x38], Bits64).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::UnsupportedOpcode);
    assert_eq!(
        e.to_string(),
        "MMIO access by an unsupported instruction: bytes 0f ae 38"
    );
    // add [rdi], eax
    assert_eq!(
        decode(&[0x01, 0x07], Bits64).unwrap_err().kind,
        DecodeErrorKind::UnsupportedOpcode
    );
    // mov eax, ecx: no memory operand
    assert_eq!(
        decode(&[0x8b, 0xc1], Bits64).unwrap_err().kind,
        DecodeErrorKind::RegisterOperand
    );
    // C7 /1 is not a MOV
    assert_eq!(
        decode(&[0xc7, 0x0f, 0, 0, 0, 0], Bits64).unwrap_err().kind,
        DecodeErrorKind::InvalidForm
    );
    // rep / lock
    assert_eq!(
        decode(&[0xf3, 0x8b, 0x07], Bits64).unwrap_err().kind,
        DecodeErrorKind::InvalidForm
    );
    // cut short
    for cut in [
        &[][..],
        &[0x66][..],
        &[0x8b][..],
        &[0x8b, 0x80, 0, 0][..],
        &[0xc7, 0x07, 1][..],
    ] {
        assert_eq!(
            decode(cut, Bits64).unwrap_err().kind,
            DecodeErrorKind::Truncated,
            "{cut:02x?}"
        );
    }
    // 15 prefixes and no opcode
    assert_eq!(
        decode(&[0x66; 20], Bits64).unwrap_err().kind,
        DecodeErrorKind::Truncated
    );
}

#[test]
fn segment_overrides_are_accepted() {
    // mov eax, gs:[rdi]
    let i = ok(&[0x65, 0x8b, 0x07], Bits64);
    assert_eq!((i.len, i.size), (3, 4));
}

#[test]
fn cpu_mode_from_registers() {
    let lma = 1 << 10;
    let l = 1 << 13;
    let db = 1 << 14;
    assert_eq!(CpuMode::from_registers(0x8000_0011, lma, l | 0x9b), Bits64);
    assert_eq!(CpuMode::from_registers(0x8000_0011, lma, db | 0x9b), Bits32);
    assert_eq!(CpuMode::from_registers(0x11, 0, db | 0x9b), Bits32);
    assert_eq!(CpuMode::from_registers(0x10, 0, 0x93), Bits16);
    assert_eq!(CpuMode::from_registers(0x11, 0, 0x9b), Bits16);
}

#[test]
fn arbitrary_bytes_never_panic_and_lengths_stay_in_bounds() {
    // A small deterministic generator instead of a proptest dependency here.
    let mut x = 0x1234_5678_9abc_def0u64;
    for _ in 0..20_000 {
        let mut bytes = [0u8; 15];
        for b in &mut bytes {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let n = (x % 16) as usize;
        for mode in [Bits16, Bits32, Bits64] {
            if let Ok(i) = decode(&bytes[..n], mode) {
                assert!(usize::from(i.len) <= n);
                assert!([1, 2, 4, 8].contains(&i.size));
            }
        }
    }
}
