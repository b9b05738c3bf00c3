"""Model files from other tools: GGUF (llama.cpp) and Hugging Face folders.

Each is parsed as data, mapped onto our one Transformer by the name tables in
tokenscope.lm.hf_names, and refused with a ModelFormatError that names what is wrong.
Every value read from a file is checked against sane bounds before anything is allocated
(tests/fuzz mutates thousands of files to hold that promise).
    gguf_file.py       the GGUF container, read with every size checked
    dequantize.py      GGUF tensor bytes to float32
    gguf_tokenizer.py  the tokenizer a GGUF file describes
    gguf_model.py      a GGUF file to a LanguageModel
    hf_folder.py       a Hugging Face folder to a LanguageModel
    chat_template.py   rendering a model's chat template in a sandbox
    empty_model.py     our Transformer, unallocated, ready to be filled
    int8.py            weight-only int8 block matrices for faster CPU decoding (an option)
    summary.py         size, parameters, architecture, quantization, from headers only
    safe_io.py         reading files without trusting them: regular files, bounded sizes
                       and JSON nesting, never blocking on a FIFO or a device
"""
