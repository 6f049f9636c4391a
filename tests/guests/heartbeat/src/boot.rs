//! The PVH entry: the ELF note that names it, and the 32-bit code that builds identity page
//! tables for the low 4 GiB (2 MiB pages), enables long mode and calls [`crate::run::hb_main`]
//! with the physical address of `hvm_start_info` (which the PVH convention passes in `ebx`).
//!
//! PVH entry state (Xen `docs/misc/pvh.pandoc`): 32-bit protected mode, paging off, flat
//! CS/DS/ES/SS, `ebx` = start_info, interrupts off. Nothing else can be assumed, so the page
//! tables, GDT and stack all live in this image.

core::arch::global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                 /* namesz: "Xen\0" */
    .long 4                 /* descsz */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long pvh_start32
    .balign 4

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, hb_start_info
    movl $hb_boot_stack_top, %esp

    /* PML4[0] -> PDPT, PDPT[0..4] -> four page directories of 2 MiB pages. */
    movl $hb_pdpt, %eax
    orl $3, %eax
    movl %eax, hb_pml4
    movl $hb_pd, %eax
    orl $3, %eax
    movl %eax, hb_pdpt
    addl $4096, %eax
    movl %eax, hb_pdpt + 8
    addl $4096, %eax
    movl %eax, hb_pdpt + 16
    addl $4096, %eax
    movl %eax, hb_pdpt + 24
    xorl %ecx, %ecx
1:
    movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax         /* present, writable, 2 MiB */
    movl %eax, hb_pd(,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jb 1b

    movl $hb_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x20, %eax         /* CR4.PAE */
    movl %eax, %cr4
    movl $0xc0000080, %ecx  /* IA32_EFER */
    rdmsr
    orl $0x100, %eax        /* LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax   /* PG | PE */
    movl %eax, %cr0
    lgdt hb_gdt_ptr
    ljmp $0x08, $hb_start64

    .code64
hb_start64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq $hb_boot_stack_top, %rsp
    movl hb_start_info(%rip), %edi
    call hb_main
2:
    hlt
    jmp 2b

    .section .rodata.hb_gdt, "a"
    .balign 8
hb_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: flat data */
hb_gdt_ptr:
    .word 23
    .long hb_gdt

    .section .bss.hb_boot, "aw", @nobits
    .balign 4096
    .global hb_pml4
hb_pml4:
    .skip 4096
    .global hb_pdpt
hb_pdpt:
    .skip 4096
hb_pd:
    .skip 4 * 4096
    .global hb_pd_high
hb_pd_high:
    .skip 2 * 4096
hb_boot_stack:
    .skip 65536
hb_boot_stack_top:
hb_start_info:
    .skip 8
"#,
    options(att_syntax)
);
