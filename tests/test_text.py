"""Vietnamese name checks: legacy encodings, invisible characters, look-alikes."""

from __future__ import annotations

import unicodedata

import pytest

from reconciler.text import check_name, check_text, nfc

GOOD = [
    "Nguyễn Văn Sơn",
    "Nguyễn Thị Tú Vân",
    "Lê Na",
    "Phạm Lê Nguyễn Hoàng Minh Khôi",
    "Công Tằng Tôn Nữ Thị Hoà",
    "Thuý",
    "Thúy",
    "Y Ngông Niê Kdăm",
    "H'Blum Buôn Yă",
    "Nay H’Wil",
    "Nay Hʼ Wil",
    "Y-Moan",
    "Giàng Seo Lử",
    "Sùng Mí Páo",
    "Bàn Văn Mình",
    "Thạch Thị Sô Phia",
    "Zơ Râm",
    "Âu Dương Phong",
    "Đặng Hoằng",
    "Xuân Tuấn Huế Khuê Thuỷ Quyết Giữ Khuyến Nguyệt",
    "Ayŭn Hơ̆",
    "Ĕ Čŏ",
    "Fin Jin Wen",
]


@pytest.mark.parametrize("name", GOOD)
def test_good_names(name: str) -> None:
    assert check_name(name) is None
    assert check_name(unicodedata.normalize("NFD", name)) is None


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("NguyÔn V¨n ViÖt", "TCVN3"),
        ("TrÇn Hoµng §øc", "TCVN3"),
        ("Nguyeãn Vaên Nam", "VNI"),
        ("Tröông Thò Mai", "VNI"),
        ("Ñaëng Vaên", "VNI"),
        ("Vi®t Nam", "VISCII"),
        ("Nguyá»…n VÄƒn SÆ¡n", 'probably "Nguyễn Văn Sơn"'),
        ("Nguy?n V?n", "lossy"),
        ("Nguy\ufffdn", "lossy"),
        ("Nguyễn\u200bVăn", "U+200B ZERO WIDTH SPACE"),
        ("Nguyễn\u00a0Văn", "unusual space"),
        ("Nguyễn Văn\x07", "invisible"),
        ("Nguyễn Văn Аn", "Cyrillic"),
        ("Nguyễn Văn Αn", "Greek"),
        ("Ðặng Văn", "look-alike of Đ"),
        ("Ɖặng Văn", "look-alike of Đ"),
        ("Nguyễn  Văn", "double spaces"),
        (" Nguyễn Văn", "leading"),
        ("Nguyễn 2", "not a letter of the Vietnamese alphabet"),
        ("", "empty"),
    ],
)
def test_bad_names(name: str, words: str) -> None:
    reason = check_name(name)
    assert reason is not None and words in reason


def test_free_text() -> None:
    assert check_text("Phòng Tổ chức - Hành chính (số 2)") is None
    assert check_text("Sở Y tế\u200b") is not None
    assert check_text("Së Y tÕ") is not None


def test_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "Nguyễn")
    assert len(nfd) == 8 and nfc(nfd) == "Nguyễn" and len(nfc(nfd)) == 6
    assert nfc("ơ\u0306") == "ơ\u0306"  # no precomposed form: survives NFC
