"""What a family's SMS notice says, per language and step. Pure.

Notices name the organisation and the step at most, never the need or anything clinical
(SDOHCC: SMS carries no PHI). Sensitive referrals name nothing at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from referrals.notify.sms_text import to_sms_alphabet
from referrals.patients.consent_rules import ADULT_AGE, age_on

STEPS = (
    "requested",
    "accepted",
    "rejected",
    "in-progress",
    "on-hold",
    "completed",
    "failed",
    "cancelled",
)

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "requested": "{org} has received a referral for you from {clinic}. They will contact you.",
        "accepted": "{org} accepted your referral and will contact you.",
        "rejected": "{org} cannot take your referral. Your care team at {clinic} will help you find another option.",
        "in-progress": "{org} has started working on your referral.",
        "on-hold": "{org} put your referral on hold. They will contact you.",
        "completed": "{org} closed your referral as completed.",
        "failed": "{org} closed your referral. Call {clinic} if you still need help.",
        "cancelled": "Your referral to {org} was cancelled. Call {clinic} with questions.",
        "private": "You have an update from your care team. Please call them.",
        "intro": "{sender}: texts about your referrals. Reply STOP to opt out, HELP for help.",
        "help": "{sender}: updates about referrals from your care team. Call your care team with questions. Reply STOP to opt out.",
    },
    # Worded without á, í, ó, ú (GSM 03.38 has é and ñ but not those), so that Spanish texts go
    # as GSM-7 and cost what the English ones do.
    "es": {
        "requested": "{org} ha recibido una referencia para usted de parte de {clinic}. Se van a comunicar con usted.",  # translation: needs review
        "accepted": "{org} ha aceptado su referencia y se va a comunicar con usted.",  # translation: needs review
        "rejected": "{org} no puede aceptar su referencia. Su equipo de salud en {clinic} le va a ayudar a buscar otra alternativa.",  # translation: needs review
        "in-progress": "{org} ha comenzado a trabajar en su referencia.",  # translation: needs review
        "on-hold": "{org} ha puesto su referencia en espera. Se van a comunicar con usted.",  # translation: needs review
        "completed": "{org} ha cerrado su referencia como completada.",  # translation: needs review
        "failed": "{org} ha cerrado su referencia. Llame a {clinic} si sigue necesitando ayuda.",  # translation: needs review
        "cancelled": "Su referencia a {org} fue cancelada. Llame a {clinic} si tiene preguntas.",
        "private": "Tiene una novedad de su equipo de salud. Por favor, llame a su equipo.",  # translation: needs review
        "intro": "{sender}: mensajes sobre sus referencias. Responda STOP para no recibirlos, HELP para ayuda.",  # translation: needs review
        "help": "{sender}: avisos de su equipo de salud sobre sus referencias. Si tiene preguntas, llame a su equipo de salud. Responda STOP para no recibir mensajes.",  # translation: needs review
    },
    "zh": {
        "requested": "{org}已收到{clinic}為您提出的轉介，他們會與您聯絡。",  # translation: needs review
        "accepted": "{org}已接受您的轉介，並會與您聯絡。",  # translation: needs review
        "rejected": "{org}無法接受您的轉介。您在{clinic}的醫護團隊會協助您尋找其他選擇。",  # translation: needs review
        "in-progress": "{org}已開始處理您的轉介。",  # translation: needs review
        "on-hold": "{org}已暫停處理您的轉介，他們會與您聯絡。",  # translation: needs review
        "completed": "{org}已完成您的轉介並結案。",  # translation: needs review
        "failed": "{org}已結束您的轉介。如仍需協助，請致電{clinic}。",  # translation: needs review
        "cancelled": "您轉介至{org}的申請已取消。如有疑問，請致電{clinic}。",  # translation: needs review
        "private": "您的醫護團隊有新消息，請致電聯絡他們。",  # translation: needs review
        "intro": "{sender}：有關您轉介的簡訊。回覆 STOP 取消訂閱，回覆 HELP 取得協助。",  # translation: needs review
        "help": "{sender}：您的醫護團隊發送的轉介通知。如有疑問，請致電您的醫護團隊。回覆 STOP 取消訂閱。",  # translation: needs review
    },
    "vi": {
        "requested": "{org} đã nhận giấy giới thiệu từ {clinic}. Họ sẽ liên lạc với quý vị.",  # translation: needs review
        "accepted": "{org} đã chấp nhận giấy giới thiệu của quý vị và sẽ liên lạc với quý vị.",  # translation: needs review
        "rejected": "{org} không thể nhận giấy giới thiệu. {clinic} sẽ giúp tìm nơi khác.",  # translation: needs review
        "in-progress": "{org} đã bắt đầu xử lý giấy giới thiệu của quý vị.",  # translation: needs review
        "on-hold": "{org} đã tạm ngưng giấy giới thiệu của quý vị. Họ sẽ liên lạc với quý vị.",  # translation: needs review
        "completed": "{org} đã hoàn tất và đóng giấy giới thiệu của quý vị.",  # translation: needs review
        "failed": "{org} đã đóng giấy giới thiệu. Hãy gọi {clinic} nếu quý vị vẫn cần giúp.",  # translation: needs review
        "cancelled": "Giấy giới thiệu đến {org} đã bị hủy. Hãy gọi {clinic} nếu có thắc mắc.",  # translation: needs review
        "private": "Quý vị có tin mới từ nhóm chăm sóc của mình. Vui lòng gọi cho họ.",  # translation: needs review
        # Short on purpose: Vietnamese goes as UCS-2 (67 characters a segment).
        "intro": "{sender}: nhắn STOP để ngừng, HELP để được giúp.",  # translation: needs review
        "help": "{sender}: thông báo về giấy giới thiệu từ nhóm chăm sóc của quý vị. Hãy gọi nhóm chăm sóc nếu có thắc mắc. Trả lời STOP để ngừng nhận.",  # translation: needs review
    },
    "tl": {
        "requested": "Nakatanggap ang {org} ng referral para sa iyo mula sa {clinic}. Makikipag-ugnayan sila sa iyo.",  # translation: needs review
        "accepted": "Tinanggap ng {org} ang iyong referral at makikipag-ugnayan sila sa iyo.",  # translation: needs review
        "rejected": "Hindi matatanggap ng {org} ang iyong referral. Tutulungan ka ng iyong care team sa {clinic} na makahanap ng ibang opsyon.",  # translation: needs review
        "in-progress": "Sinimulan na ng {org} ang pag-asikaso sa iyong referral.",  # translation: needs review
        "on-hold": "Pansamantalang itinigil ng {org} ang iyong referral. Makikipag-ugnayan sila sa iyo.",  # translation: needs review
        "completed": "Isinara ng {org} ang iyong referral bilang tapos na.",  # translation: needs review
        "failed": "Isinara ng {org} ang iyong referral. Tawagan ang {clinic} kung kailangan mo pa ng tulong.",  # translation: needs review
        "cancelled": "Kinansela ang iyong referral sa {org}. Tawagan ang {clinic} kung may tanong ka.",  # translation: needs review
        "private": "May update para sa iyo mula sa iyong care team. Pakitawagan sila.",  # translation: needs review
        "intro": "{sender}: mga text tungkol sa iyong mga referral. Mag-reply ng STOP para huminto, HELP para sa tulong.",  # translation: needs review
        "help": "{sender}: mga update tungkol sa referral mula sa iyong care team. Tawagan ang iyong care team kung may tanong. Mag-reply ng STOP para huminto.",  # translation: needs review
    },
    "ko": {
        "requested": "{org}에서 {clinic}의 의뢰를 받았습니다. 곧 연락드릴 예정입니다.",  # translation: needs review
        "accepted": "{org}에서 의뢰를 수락했으며 연락드릴 예정입니다.",  # translation: needs review
        "rejected": "{org}에서 의뢰를 받을 수 없습니다. {clinic} 의료팀이 다른 방법을 찾도록 도와드립니다.",  # translation: needs review
        "in-progress": "{org}에서 의뢰 처리를 시작했습니다.",  # translation: needs review
        "on-hold": "{org}에서 의뢰를 보류했습니다. 연락드릴 예정입니다.",  # translation: needs review
        "completed": "{org}에서 의뢰를 완료하고 종결했습니다.",  # translation: needs review
        "failed": "{org}에서 의뢰를 종결했습니다. 도움이 더 필요하시면 {clinic}에 전화하세요.",  # translation: needs review
        "cancelled": "{org}(으)로 보낸 의뢰가 취소되었습니다. 문의 사항은 {clinic}에 전화하세요.",  # translation: needs review
        "private": "담당 의료팀의 새 소식이 있습니다. 의료팀에 전화해 주세요.",  # translation: needs review
        # Short on purpose: Korean goes as UCS-2 (67 characters a segment).
        "intro": "{sender}: 수신 거부 STOP, 도움말 HELP.",  # translation: needs review
        "help": "{sender}: 담당 의료팀의 의뢰 관련 안내입니다. 문의 사항은 의료팀에 전화하세요. 수신 거부는 STOP이라고 답장하세요.",  # translation: needs review
    },
}


@dataclass(frozen=True)
class Contact:
    kind: str  # patient | guardian
    phone: str
    language: str


@dataclass(frozen=True)
class Skip:
    reason: str


def choose_recipient(
    *,
    birth_date: date,
    today: date,
    patient_phone: str | None,
    patient_language: str,
    guardians: list[tuple[str | None, str]],  # (phone, language), in order of preference
    sensitive: bool,
    contact_prohibited: bool,
    opted_in: bool,
    texts_allowed: bool = True,
    chosen_phone: str | None = None,
    chosen_language: str | None = None,
) -> Contact | Skip:
    """Whom a notice goes to, or why it goes to no one.

    A minor's notices go to a guardian, except for sensitive (minor-consent) referrals, which
    only ever reach the adolescent (Cal. Family Code 6920-6929, Health & Safety Code 123110).
    When the family chose the number texts go to (and their language), they go there; when
    they declined texts, none go."""
    if contact_prohibited:
        return Skip("The referral says the family must not be contacted.")
    if not opted_in:
        return Skip("The family opted out of text messages.")
    if not texts_allowed:
        return Skip("The family asked for no text messages about this referral.")
    guardian_phones = {phone for phone, _ in guardians if phone}
    if chosen_phone:
        kind = "guardian" if chosen_phone in guardian_phones else "patient"
        if sensitive and kind == "guardian":
            return Skip("Confidential referral: the chosen number is a guardian's.")
        language = chosen_language or next(
            (lang for phone, lang in guardians if phone == chosen_phone), patient_language
        )
        return Contact(kind, chosen_phone, language)
    if sensitive:
        # A shared family phone is the guardian's phone: the notice would disclose.
        if patient_phone and patient_phone not in {phone for phone, _ in guardians}:
            return Contact("patient", patient_phone, patient_language)
        return Skip("Confidential referral and the patient has no phone of their own.")
    if age_on(birth_date, today) < ADULT_AGE:
        for phone, language in guardians:
            if phone:
                return Contact("guardian", phone, language)
    if patient_phone:
        return Contact("patient", patient_phone, patient_language)
    return Skip("No phone number on file.")


def text_language(language: str) -> str:
    """The language a notice is actually written in: the family's, or English until we have it."""
    return language if language in TEXTS else "en"


def notice_text(
    step: str,
    language: str,
    *,
    org: str,
    clinic: str,
    sensitive: bool,
    sender: str,
    first: bool,
) -> str:
    """The notice for a step, in the family's language (English when we have no translation).

    A sensitive referral's notice is the same for every step and names no one. The first text a
    number ever gets starts with who is texting and how to stop (CTIA: opt-out at enrolment)."""
    texts = TEXTS[text_language(language)]
    if sensitive:
        body = texts["private"]
    else:
        body = texts[step].format(org=short_name(org), clinic=short_name(clinic))
    if first:
        body = f"{texts['intro'].format(sender=sender)} {body}"
    return to_sms_alphabet(body)


NAME_MAX = 40  # characters of an organisation's name in a text: enough to recognise it


def short_name(name: str, limit: int = NAME_MAX) -> str:
    """A name cut at a word to fit a text ("Oakland Unified School District Family..."): a
    long legal name would push a text past three segments."""
    name = " ".join(name.split())
    if len(name) <= limit:
        return name
    cut = name[: limit - 3].rsplit(" ", 1)[0] if " " in name[: limit - 3] else name[: limit - 3]
    return cut.rstrip(" ,;-") + "..."


def help_text(language: str, *, sender: str) -> str:
    """The answer to a HELP reply: who is texting, whom to ask, how to stop."""
    return to_sms_alphabet(TEXTS[text_language(language)]["help"].format(sender=sender))


def mask_phone(phone: str | None) -> str:
    """+14155550123 -> +1••••••••23: enough for staff to tell numbers apart, not to dial."""
    if not phone:
        return ""
    return phone[:2] + "•" * max(0, len(phone) - 4) + phone[-2:]
