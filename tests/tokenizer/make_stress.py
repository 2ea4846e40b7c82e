#!/usr/bin/env python3
"""Writes stress.txt, the hand-made tokenizer stress file (kept in git; rerun
only to change it). Each line is encoded on its own by the parity tests, so
the interesting characters sit inside lines; CR stays part of a line."""
import os

L = []
add = L.append
# Source code in several languages (tabs, indentation, operators, strings).
add('#include <stdio.h>\r')
add('int main(int argc, char** argv) { printf("%d\\n", argc); return 0; }\r')
add('\tfor (size_t i = 0; i < n; ++i) { sum += a[i] * b[i]; }  // dot product')
add('def fib(n: int) -> int:\n'.rstrip('\n'))
add('    return n if n < 2 else fib(n - 1) + fib(n - 2)  # 🐍')
add('fn main() { let v: Vec<u8> = (0..=255).collect(); println!("{:?}", &v[..4]); }')
add('const f = async (x) => { await Promise.all([1,2,3].map(y => y ** 2)); return x?.y ?? null; };')
add('func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }')
add('SELECT u.id, COUNT(*) AS n FROM users u JOIN orders o ON o.uid = u.id WHERE o.total > 100.50 GROUP BY 1;')
add('<div class="x" data-id=\'42\'><a href="https://example.com/path?q=1&r=2#frag">link</a></div>')
add('if [[ -f "$HOME/.bashrc" ]]; then source ~/.bashrc; fi && echo $((1<<10)) | tee -a /tmp/log.txt')
add('\t\t\treturn   x;\t \t')
add('    \t    mixed indentation   ')
add('λx.λy.x ≡ K; ∀ε>0 ∃δ>0: |x−a|<δ ⇒ |f(x)−f(a)|<ε; ∑_{i=1}^{n} i² = n(n+1)(2n+1)/6')
# Chinese, Japanese, Korean.
add('深度求索（DeepSeek）发布了新模型，支持128K上下文。你好，世界！')
add('東京は日本の首都です。ひらがな、カタカナ、漢字を混ぜて書きます。ｶﾀｶﾅ（半角）も。')
add('한국어 문장입니다. 안녕하세요, 반갑습니다! 훈민정음 ᄀᄁᄂ')
add('繁體中文與简体中文混排：龍龙、體体、萬万。鿐鿕（CJK Ext）𠀀𠀁𪚥')
add('「引用」『二重』【括弧】〔亀甲〕・・・ー〜！？。、')
# Emoji: ZWJ sequences, skin tones, flags, keycaps, newer code points.
add('family 👨‍👩‍👧‍👦 couple 👩‍❤️‍💋‍👨 technologist 🧑🏽‍💻 thumbs 👍🏻👍🏼👍🏽👍🏾👍🏿')
add('flags 🇺🇸🇯🇵🇨🇳🇩🇪 🏴󠁧󠁢󠁳󠁣󠁴󠁿 keycaps 1️⃣#️⃣*️⃣ hearts ❤️🧡💛💚💙💜🖤🤍🤎')
add('newer emoji 🫠🫨🩷🐦‍🔥🍋‍🟩 and text-vs-emoji ☺︎☺️ ✈︎✈️')
add('😀😃😄😁😆😅😂🤣🥲☺️😊😇🙂🙃😉😌😍🥰😘😗😙😚😋😛😝😜🤪🤨🧐🤓😎🥸🤩🥳')
# Combining marks and other scripts.
add('cafe\u0301 vs café; n\u0303 vs ñ; Z\u0351\u0357a\u0358l\u0363g\u0364o\u0365 t\u0300\u0301\u0302\u0303e\u0304xt')
add('देवनागरी लिपि में हिन्दी; தமிழ் எழுத்து; ภาษาไทยไม่มีช่องว่าง; ລາວ')
add('العربية مع التشكيل: بِسْمِ اللَّهِ الرَّحْمَنِ الرَّحِيمِ؛ עִבְרִית עם ניקוד')
add('Ελληνικά: Αλφάβητο; Русский язык: Съешь же ещё этих мягких французских булок.')
add('ÅÆØ åæø ß ẞ ﬁﬂ Ǆǅǆ ı İ ŉ ǰ ΐ')
# Digits of all kinds.
add('1234567890123456789012345678901234567890 3.14159265358979 1,000,000 -42 +7e-10 0x1F 0b1010')
add('٠١٢٣٤٥٦٧٨٩ ۰۱۲۳ १२३४ １２３４５ ²³¹ ½¾⅓ ⅫⅣ ⑴⑵ ①②③ 𝟘𝟙𝟚')
add('2024-12-26T10:30:00Z v1.2.3-rc.4 192.168.0.1:8080 +1 (555) 123-4567')
# Unusual whitespace and control characters.
add('next\u0085line and bom\ufeffinside and nbsp\u00a0here and ideographic\u3000space')
add('\ufeffleading BOM, zero\u200bwidth, joiner\u200dx, non\u200cjoiner, mongolian\u180evowel')
add('line\u2028separator paragraph\u2029separator thin\u2009space en\u2002em\u2003')
add('vertical\u000btab form\u000cfeed nul\u0000byte bell\u0007 del\u007f esc\u001b[0m')
add('mongolian vowel separator alone \u180e \u180e\u180e x\u180e\u180e \u180e')
add('trailing spaces     ')
add('     leading spaces')
add(' ')
add('\t')
add('a\r\rb\r')
add('CRLF inside\r\nlooks like this'.replace('\n', ''))
add('private use \ue000\uf8ff and plane 15 \U000f0000, unassigned \u0378\u0380, noncharacter \ufdd0\uffff')
# Letters from recent Unicode versions (13: Yezidi, Khitan; 14: Vithkuqi, Toto;
# 15: Kawi, Nag Mundari, CJK Ext H; 15.1: CJK Ext I; 16: Garay, Todhri, Sunuwar).
add('v13 \U00010E80\U00010E81 \U00018B00\U00018B01 v14 \U00010570\U00010597 \U0001E290\U0001E291')
add('v15 \U00011F04\U00011F05\U00011F06 \U0001E4D0\U0001E4D1 \U00031350\U00031351 v15.1 \U0002EBF0\U0002EBF1')
add('v16 \U00010D50\U00010D51 \U000105C0\U000105C1 \U00011BC0\U00011BC1 digits \U00011BF0\U00011BF1 \U0001E5F1')
add('v15 digits \U00011F50\U00011F51 \U0001E4F0\U0001E4F1 marks a\U00011F00b \U0001E4EC')
# Very long words and runs.
add('a' * 3000)
add('Pneumonoultramicroscopicsilicovolcanoconiosis' * 40)
add('https://example.com/' + 'very-long-path-segment/' * 60 + '?' + '&'.join(f'k{i}=v{i}' for i in range(80)))
add('QmFzZTY0IGVuY29kZWQgdGV4dCBnb2VzIGhlcmU' * 50 + '==')
add(' ' * 700 + 'x' + ' ' * 700)
add('!' * 500 + '?' * 500 + '.' * 300)
add('\t' * 200 + 'tabbed')
add('9' * 1000)
add('漢' * 1500)
add('😀' * 400)
# Special tokens inside text.
add('<｜begin▁of▁sentence｜>Hello<｜end▁of▁sentence｜>')
add('<｜User｜>What is 2+2?<｜Assistant｜><think>\rsimple\r</think>\r\r4<｜end▁of▁sentence｜>')
add('text<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n'.rstrip('\n') + '```json{"city":"Paris"}```<｜tool▁call▁end｜><｜tool▁calls▁end｜>')
add('almost special <｜User and <｜User｜ and <<｜User｜>> and <｜▁pad▁｜><｜place▁holder▁no▁17｜>x')
add('<｜fim▁begin｜>def f():<｜fim▁hole｜>\n'.rstrip('\n') + '    return 1<｜fim▁end｜> <|EOT|> <think></think>')
add('word<think>inside</think>word <｜tool▁output▁begin｜>{"ok": true}<｜tool▁output▁end｜>')
add('strip tests:  \t <｜User｜>  x <｜Assistant｜>   y a<｜tool▁sep｜> b \u3000<｜tool▁sep｜>\u3000c')
add('single word: a<think>b <think> c<think> <think>d _<think>_ 1<think>2 é<think>é')
add('lstrip after token: <｜User｜> </think> x </think></think>  <｜User｜><｜User｜>')
# Punctuation followed by line breaks (DeepSeek-V3's combined tokens) need CR here.
add('end of sentence.\r')
add('list:\r\r\r')
add('"quoted," she said; (parenthetical) [bracketed] {braced} <angled> — em – en … ellipsis')
add("it's don't I'm we'll they've you'd O'Brien rock'n'roll")
add('MiXeD CaSe wOrDs and ALLCAPS and snake_case_words and camelCaseWords and kebab-case-words')
# Invalid UTF-8 bytes (each parity side reads them as U+FFFD first).
B = [b'bad \xff byte', b'truncated \xe4\xbd end', b'overlong \xc0\xaf and surrogate \xed\xa0\x80 x',
     b'lone continuation \x80\x80 and \xf4\x90\x80\x80 too big', b'ends truncated \xf0\x9f\x98']

with open(os.path.join(os.path.dirname(__file__), 'stress.txt'), 'wb') as f:
    for line in L:
        assert '\n' not in line
        f.write(line.encode('utf-8') + b'\n')
    for b in B:
        f.write(b + b'\n')
