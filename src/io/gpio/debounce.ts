/** A level that must stay the same for `ms` before it counts (contacts and buttons bounce). */
export class DebouncedLevel {
  private stable: number | null;
  private candidate: number | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ms: number,
    private readonly onChange: (value: number) => void,
    initial: number | null = null,
  ) {
    this.stable = initial;
  }

  get value(): number | null {
    return this.stable;
  }

  /** A raw reading (interrupt or poll). */
  sample(v: number): void {
    if (v === this.candidate) return;
    this.candidate = v;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (v === this.stable) return;
    const settle = (): void => {
      this.timer = null;
      if (this.candidate !== v || v === this.stable) return;
      this.stable = v;
      this.onChange(v);
    };
    if (this.ms <= 0) settle();
    else this.timer = setTimeout(settle, this.ms);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}
