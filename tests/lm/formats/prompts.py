"""Prompts the real-model tests share: varied languages, code, numbers, few-shot patterns,
chat markup, and one long passage."""

PASSAGE = (
    "Indonesia is an archipelagic country in Southeast Asia, lying between the Indian and "
    "Pacific oceans. It consists of over 17,000 islands, including Sumatra, Java, Sulawesi, and "
    "parts of Borneo and New Guinea. Indonesia is the world's largest archipelagic state and "
    "the 14th-largest country by area, at 1,904,569 square kilometres. With over 280 million "
    "people, Indonesia is the world's fourth-most-populous country and the most populous "
    "Muslim-majority country. Java, the world's most populous island, is home to more than half "
    "of the country's population. Indonesia is a presidential republic with an elected "
    "legislature. It has 38 provinces, of which nine have special autonomous status. The "
    "country's capital, Jakarta, is the world's second-most-populous urban area. Indonesia "
    "shares land borders with Papua New Guinea, East Timor, and the eastern part of Malaysia, "
    "as well as maritime borders with Singapore, Vietnam, Thailand, the Philippines, Australia, "
    "Palau, and India. Despite its large population and densely populated regions, Indonesia "
    "has vast areas of wilderness that support one of the world's highest levels of "
    "biodiversity. The country is richly endowed with natural resources, yet poverty remains "
    "widespread. The capital of Indonesia is"
)

PROMPTS = [
    "The capital of Indonesia is",
    "The capital of France is",
    "Once upon a time, there was a",
    "The quick brown fox jumps over the",
    "In 1969, the first man to walk on the moon was",
    "Water boils at a temperature of",
    "My favourite colour is",
    "The meaning of life is",
    "Ibu kota Indonesia adalah",
    "Saya suka makan nasi goreng karena",
    "Selamat pagi! Apa kabar? Saya",
    "中国的首都是",
    "语言模型预测下一个词。",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "import numpy as np\nx = np.zeros(",
    "for (int i = 0; i < 10; i++) {",
    "SELECT name FROM users WHERE",
    "<html>\n<head>\n<title>",
    "1, 2, 3, 4, 5,",
    "2 + 2 =",
    "The year 2024 was",
    "x =   42\ny =",
    "3.14159265",
    "English: cat\nFrench: chat\nEnglish: dog\nFrench: chien\nEnglish: house\nFrench:",
    "Q: What is 3 + 5?\nA: 8\nQ: What is 7 + 2?\nA:",
    "Translate to Indonesian: good morning =>",
    "<|im_start|>user\nWhat is the capital of Indonesia?<|im_end|>\n<|im_start|>assistant\n",
    "   leading spaces and\n\n\nnewlines",
    "Emoji: 👍🏽🎉 and accents: café, naïve,",
    PASSAGE,
]
