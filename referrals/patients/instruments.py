"""Screening instruments as data: questions with their LOINC codes, answer options with their
LOINC answer codes (LA...), the SDOH domain(s) each question screens for, and each instrument's
published scoring rules. Pure: no Flask, no database.

Sources the codes were checked against:
- Hunger Vital Sign (88121-9): the Gravity SDOHCC IG's `SDOHCC-QuestionnaireHungerVitalSign`
  (answers, the 88124-3 result and its either-item rule).
- AHC HRSN core (96777-8): the CMS AHC HRSN screening tool as tabulated, with LOINC question and
  answer codes, in the New York SHIN-NY HRSN IG (1.4.5); positive answers are the ones the CMS
  tool underlines; safety items 1-5 each, total 95614-4, 11 or more is positive.
- PRAPARE (93025-5): the Gravity SDOHCC IG's `SDOHCC-QuestionnairePRAPARE` and its
  screening-response examples (domain per item).

Spanish texts were written by us, not taken from the published Spanish versions of the tools:
each is marked `# translation: needs review`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LOINC = "http://loinc.org"


@dataclass(frozen=True)
class Text:
    """A label in English and Spanish."""

    en: str
    es: str

    def in_language(self, language: str) -> str:
        return self.es if language == "es" else self.en


@dataclass(frozen=True)
class AnswerOption:
    code: str  # LOINC answer code (LA...)
    text: Text
    points: int | None = None  # the item's value in a summed score, when the rule has one


@dataclass(frozen=True)
class Question:
    code: str  # LOINC question code
    text: Text
    options: tuple[AnswerOption, ...]
    # The SDOH domains (SDOHCC-ValueSetSDOHCategory) the question screens for.
    domains: tuple[str, ...]
    # Answer code -> the domains that answer makes positive (the tool's "positive" answers).
    positive_answers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    repeats: bool = False  # "select all that apply"

    def option(self, code: str) -> AnswerOption | None:
        return next((option for option in self.options if option.code == code), None)

    @property
    def answer_codes(self) -> tuple[str, ...]:
        return tuple(option.code for option in self.options)


@dataclass(frozen=True)
class SumScoreRule:
    """A summed score over some items, positive at or above a threshold (AHC safety)."""

    code: str  # LOINC code of the score
    name: Text
    questions: tuple[str, ...]
    threshold: int
    domain: str


@dataclass(frozen=True)
class EitherItemRule:
    """At risk when any of the items has one of the risk answers (Hunger Vital Sign)."""

    code: str  # LOINC code of the result
    name: Text
    questions: tuple[str, ...]
    risk_answers: frozenset[str]
    at_risk: AnswerOption
    no_risk: AnswerOption
    domain: str


Rule = SumScoreRule | EitherItemRule


@dataclass(frozen=True)
class Instrument:
    code: str  # LOINC panel code
    key: str
    name: Text
    questions: tuple[Question, ...]
    rules: tuple[Rule, ...] = ()

    def question(self, code: str) -> Question | None:
        return next((question for question in self.questions if question.code == code), None)

    @property
    def question_codes(self) -> tuple[str, ...]:
        return tuple(question.code for question in self.questions)

    @property
    def domains(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for question in self.questions:
            seen.update(dict.fromkeys(question.domains))
        for rule in self.rules:
            seen[rule.domain] = None
        return tuple(seen)


# --- shared answer options -------------------------------------------------------------------

YES = AnswerOption("LA33-6", Text("Yes", "Sí"))  # translation: needs review
NO = AnswerOption("LA32-8", Text("No", "No"))  # translation: needs review
CHOOSE_NOT_TO_ANSWER = AnswerOption(
    "LA30122-8",
    Text(
        "I choose not to answer this question",
        "Prefiero no responder esta pregunta",  # translation: needs review
    ),
)

OFTEN_TRUE = AnswerOption(
    "LA28397-0",
    Text("Often true", "Con frecuencia es cierto"),  # translation: needs review
)
SOMETIMES_TRUE = AnswerOption(
    "LA6729-3",
    Text("Sometimes true", "A veces es cierto"),  # translation: needs review
)
NEVER_TRUE = AnswerOption(
    "LA28398-8",
    Text("Never true", "Nunca es cierto"),  # translation: needs review
)
DONT_KNOW_REFUSED = AnswerOption(
    "LA15775-2",
    Text("Don't know/refused", "No sabe/se niega a responder"),  # translation: needs review
)
FOOD_RISK_ANSWERS = frozenset({OFTEN_TRUE.code, SOMETIMES_TRUE.code})

FOOD_DOMAIN = "food-insecurity"
FOOD_WORRIED = "88122-7"
FOOD_RAN_OUT = "88123-5"
FOOD_WORRIED_TEXT = Text(
    "Within the past 12 months, we worried whether our food would run out before we got money "
    "to buy more.",
    "En los últimos 12 meses, nos preocupó que la comida se acabara antes de tener dinero para "
    "comprar más.",  # translation: needs review
)
FOOD_RAN_OUT_TEXT = Text(
    "Within the past 12 months, the food we bought just didn't last and we didn't have money to "
    "get more.",
    "En los últimos 12 meses, la comida que compramos no alcanzó y no teníamos dinero para "
    "comprar más.",  # translation: needs review
)


def _food_question(code: str, text: Text, options: tuple[AnswerOption, ...]) -> Question:
    return Question(
        code=code,
        text=text,
        options=options,
        domains=(FOOD_DOMAIN,),
        positive_answers={answer: (FOOD_DOMAIN,) for answer in FOOD_RISK_ANSWERS},
    )


# --- Hunger Vital Sign (88121-9) -------------------------------------------------------------

HVS_OPTIONS = (OFTEN_TRUE, SOMETIMES_TRUE, NEVER_TRUE, DONT_KNOW_REFUSED)
HVS_RESULT = "88124-3"
AT_RISK = AnswerOption("LA19952-3", Text("At risk", "En riesgo"))  # translation: needs review
NO_RISK = AnswerOption("LA19983-8", Text("No risk", "Sin riesgo"))  # translation: needs review

HUNGER_VITAL_SIGN = Instrument(
    code="88121-9",
    key="hvs",
    name=Text("Hunger Vital Sign", "Signo vital del hambre"),  # translation: needs review
    questions=(
        _food_question(FOOD_WORRIED, FOOD_WORRIED_TEXT, HVS_OPTIONS),
        _food_question(FOOD_RAN_OUT, FOOD_RAN_OUT_TEXT, HVS_OPTIONS),
    ),
    rules=(
        # "An answer of 'often true' or 'sometimes true' to either or both of the Hunger Vital
        # Sign questions identifies a patient as at risk for food insecurity" (SDOHCC IG).
        EitherItemRule(
            code=HVS_RESULT,
            name=Text(
                "Food insecurity risk", "Riesgo de inseguridad alimentaria"
            ),  # translation: needs review
            questions=(FOOD_WORRIED, FOOD_RAN_OUT),
            risk_answers=FOOD_RISK_ANSWERS,
            at_risk=AT_RISK,
            no_risk=NO_RISK,
            domain=FOOD_DOMAIN,
        ),
    ),
)


# --- AHC HRSN core (96777-8) -----------------------------------------------------------------

LIVING_SITUATION = "71802-3"
STEADY_PLACE = AnswerOption(
    "LA31993-1",
    Text(
        "I have a steady place to live", "Tengo un lugar estable donde vivir"
    ),  # translation: needs review
)
WORRIED_ABOUT_LOSING = AnswerOption(
    "LA31994-9",
    Text(
        "I have a place to live today, but I am worried about losing it in the future",
        "Hoy tengo un lugar donde vivir, pero me preocupa "
        "perderlo en el futuro",  # translation: needs review
    ),
)
NO_STEADY_PLACE = AnswerOption(
    "LA31995-6",
    Text(
        "I do not have a steady place to live (I am temporarily staying with others, in a hotel, "
        "in a shelter, living outside on the street, on a beach, in a car, abandoned building, "
        "bus or train station, or in a park)",
        "No tengo un lugar estable donde vivir (me estoy quedando temporalmente con otras "
        "personas, en un hotel, en un refugio, vivo en la calle, en una playa, en un carro, en "
        "un edificio abandonado, en una estación de autobús o de tren, "
        "o en un parque)",  # translation: needs review
    ),
)

HOUSING_PROBLEMS = "96778-6"
NONE_OF_THE_ABOVE = AnswerOption(
    "LA9-3",
    Text("None of the above", "Ninguno de los anteriores"),  # translation: needs review
)
HOUSING_PROBLEM_OPTIONS = (
    AnswerOption(
        "LA31996-4",
        Text("Pests such as bugs, ants, or mice", "Plagas como insectos, hormigas o ratones"),
    ),  # translation: needs review
    AnswerOption("LA28580-1", Text("Mold", "Moho")),  # translation: needs review
    AnswerOption(
        "LA31997-2", Text("Lead paint or pipes", "Pintura o tuberías con plomo")
    ),  # translation: needs review
    AnswerOption(
        "LA31998-0", Text("Lack of heat", "Falta de calefacción")
    ),  # translation: needs review
    AnswerOption(
        "LA31999-8", Text("Oven or stove not working", "El horno o la estufa no funcionan")
    ),  # translation: needs review
    AnswerOption(
        "LA32000-4",
        Text(
            "Smoke detectors missing or not working",
            "Detectores de humo que faltan o no funcionan",  # translation: needs review
        ),
    ),
    AnswerOption(
        "LA32001-2", Text("Water leaks", "Goteras o fugas de agua")
    ),  # translation: needs review
)

UTILITIES = "96779-4"
ALREADY_SHUT_OFF = AnswerOption(
    "LA32002-0",
    Text("Already shut off", "Ya los cortaron"),  # translation: needs review
)

TRANSPORTATION = "93030-5"

SAFETY_HURT = "95618-5"
SAFETY_INSULT = "95617-7"
SAFETY_THREATEN = "95616-9"
SAFETY_SCREAM = "95615-1"
SAFETY_SCORE = "95614-4"
SAFETY_THRESHOLD = 11
# The AHC safety items come from HITS (Hurt, Insult, Threaten, Scream), a partner-violence
# screen; we file a positive safety score under intimate-partner-violence so the sensitive
# referral rules apply. (The SHIN-NY IG files these items under sdoh-category-unspecified.)
SAFETY_DOMAIN = "intimate-partner-violence"
FREQUENCY_OPTIONS = (
    AnswerOption("LA6270-8", Text("Never", "Nunca"), points=1),  # translation: needs review
    AnswerOption("LA10066-1", Text("Rarely", "Rara vez"), points=2),  # translation: needs review
    AnswerOption("LA10082-8", Text("Sometimes", "A veces"), points=3),  # translation: needs review
    AnswerOption(
        "LA16644-9", Text("Fairly often", "Con bastante frecuencia"), points=4
    ),  # translation: needs review
    AnswerOption(
        "LA6482-9", Text("Frequently", "Frecuentemente"), points=5
    ),  # translation: needs review
)


def _safety_question(code: str, text: Text) -> Question:
    # No single safety answer is positive: only the summed score is (AHC scoring guide).
    return Question(code=code, text=text, options=FREQUENCY_OPTIONS, domains=(SAFETY_DOMAIN,))


AHC_HRSN = Instrument(
    code="96777-8",
    key="ahc-hrsn",
    name=Text(
        "Accountable Health Communities Health-Related Social Needs screening (core)",
        "Evaluación de necesidades sociales relacionadas con la salud (AHC), "
        "preguntas básicas",  # translation: needs review
    ),
    questions=(
        Question(
            code=LIVING_SITUATION,
            text=Text(
                "What is your living situation today?", "¿Cuál es su situación de vivienda hoy?"
            ),  # translation: needs review
            options=(STEADY_PLACE, WORRIED_ABOUT_LOSING, NO_STEADY_PLACE),
            domains=("housing-instability", "homelessness"),
            positive_answers={
                WORRIED_ABOUT_LOSING.code: ("housing-instability",),
                NO_STEADY_PLACE.code: ("homelessness",),
            },
        ),
        Question(
            code=HOUSING_PROBLEMS,
            text=Text(
                "Think about the place you live. Do you have problems with any of the following?",
                "Piense en el lugar donde vive. ¿Tiene problemas con "
                "alguno de los siguientes?",  # translation: needs review
            ),
            options=(*HOUSING_PROBLEM_OPTIONS, NONE_OF_THE_ABOVE),
            domains=("inadequate-housing",),
            positive_answers={
                option.code: ("inadequate-housing",) for option in HOUSING_PROBLEM_OPTIONS
            },
            repeats=True,
        ),
        _food_question(FOOD_WORRIED, FOOD_WORRIED_TEXT, (OFTEN_TRUE, SOMETIMES_TRUE, NEVER_TRUE)),
        _food_question(FOOD_RAN_OUT, FOOD_RAN_OUT_TEXT, (OFTEN_TRUE, SOMETIMES_TRUE, NEVER_TRUE)),
        Question(
            code=TRANSPORTATION,
            text=Text(
                "In the past 12 months, has lack of reliable transportation kept you from medical "
                "appointments, meetings, work or from getting things needed for daily living?",
                "En los últimos 12 meses, ¿la falta de transporte confiable le ha impedido ir a "
                "citas médicas, reuniones o al trabajo, o conseguir cosas que necesita para la "
                "vida diaria?",  # translation: needs review
            ),
            options=(YES, NO),
            domains=("transportation-insecurity",),
            positive_answers={YES.code: ("transportation-insecurity",)},
        ),
        Question(
            code=UTILITIES,
            text=Text(
                "In the past 12 months has the electric, gas, oil, or water company threatened to "
                "shut off services in your home?",
                "En los últimos 12 meses, ¿la compañía de electricidad, gas, petróleo o agua ha "
                "amenazado con cortar los servicios en su hogar?",  # translation: needs review
            ),
            options=(YES, NO, ALREADY_SHUT_OFF),
            domains=("utility-insecurity",),
            positive_answers={
                YES.code: ("utility-insecurity",),
                ALREADY_SHUT_OFF.code: ("utility-insecurity",),
            },
        ),
        _safety_question(
            SAFETY_HURT,
            Text(
                "How often does anyone, including family and friends, physically hurt you?",
                "¿Con qué frecuencia alguien, incluidos familiares y amigos, "
                "le hace daño físico?",  # translation: needs review
            ),
        ),
        _safety_question(
            SAFETY_INSULT,
            Text(
                "How often does anyone, including family and friends, insult or talk down to you?",
                "¿Con qué frecuencia alguien, incluidos familiares y amigos, le insulta o le "
                "menosprecia?",  # translation: needs review
            ),
        ),
        _safety_question(
            SAFETY_THREATEN,
            Text(
                "How often does anyone, including family and friends, threaten you with harm?",
                "¿Con qué frecuencia alguien, incluidos familiares y amigos, le amenaza con "
                "hacerle daño?",  # translation: needs review
            ),
        ),
        _safety_question(
            SAFETY_SCREAM,
            Text(
                "How often does anyone, including family and friends, scream or curse at you?",
                "¿Con qué frecuencia alguien, incluidos familiares y amigos, le grita o le "
                "maldice?",  # translation: needs review
            ),
        ),
    ),
    rules=(
        # AHC HRSN scoring: sum the four items (1-5 each); 11 or more means the person may not
        # be safe.
        SumScoreRule(
            code=SAFETY_SCORE,
            name=Text(
                "Total safety score", "Puntuación total de seguridad"
            ),  # translation: needs review
            questions=(SAFETY_HURT, SAFETY_INSULT, SAFETY_THREATEN, SAFETY_SCREAM),
            threshold=SAFETY_THRESHOLD,
            domain=SAFETY_DOMAIN,
        ),
    ),
)


# --- PRAPARE (93025-5) -----------------------------------------------------------------------
# Only the items whose risk answers and SDOH domain we could confirm from the SDOHCC IG's
# PRAPARE questionnaire and examples. Left out for now: demographics, education, insurance,
# income, household size, social contact (93029-7) and stress (93038-8), whose risk cut-offs we
# could not confirm from a published source.

PRAPARE_HOUSING_STATUS = "71802-3"  # same LOINC question as AHC, PRAPARE's own answer list
HAVE_HOUSING = AnswerOption(
    "LA30189-7",
    Text("I have housing", "Tengo vivienda"),  # translation: needs review
)
NO_HOUSING = AnswerOption(
    "LA30190-5",
    Text(
        "I do not have housing (staying with others, in a hotel, in a shelter, living outside on "
        "the street, on a beach, in a car, or in a park)",
        "No tengo vivienda (me quedo con otras personas, en un hotel, en un refugio, vivo en la "
        "calle, en una playa, en un carro o en un parque)",  # translation: needs review
    ),
)
PRAPARE_HOUSING_WORRY = "93033-9"
PRAPARE_EMPLOYMENT = "67875-5"
UNEMPLOYED = AnswerOption(
    "LA17956-6",
    Text("Unemployed", "Desempleado/a"),  # translation: needs review
)
PRAPARE_UNMET_NEEDS = "93031-3"
UNMET_FOOD = AnswerOption("LA30125-1", Text("Food", "Comida"))  # translation: needs review
UNMET_CLOTHING = AnswerOption("LA30126-9", Text("Clothing", "Ropa"))  # translation: needs review
UNMET_UTILITIES = AnswerOption(
    "LA30124-4",
    Text("Utilities", "Servicios públicos (luz, agua, gas)"),  # translation: needs review
)
PRAPARE_TRANSPORTATION = "93030-5"
TRANSPORT_MEDICAL = AnswerOption(
    "LA30133-5",
    Text(
        "Yes, it has kept me from medical appointments or from getting my medications",
        "Sí, me ha impedido ir a citas médicas o conseguir "
        "mis medicamentos",  # translation: needs review
    ),
)
TRANSPORT_NON_MEDICAL = AnswerOption(
    "LA30134-3",
    Text(
        "Yes, it has kept me from non-medical meetings, appointments, work, or from getting "
        "things that I need",
        "Sí, me ha impedido ir a reuniones o citas no médicas, al trabajo, o conseguir cosas "
        "que necesito",  # translation: needs review
    ),
)
UNABLE_TO_RESPOND = AnswerOption(
    "LA30257-2",
    Text(
        "Patient unable to respond", "El paciente no puede responder"
    ),  # translation: needs review
)
PRAPARE_AFRAID_OF_PARTNER = "76501-6"

PRAPARE = Instrument(
    code="93025-5",
    key="prapare",
    name=Text(
        "PRAPARE: Protocol for Responding to and Assessing Patients' Assets, Risks, and "
        "Experiences",
        "PRAPARE: Protocolo para responder y evaluar los recursos, riesgos y experiencias de "
        "los pacientes",  # translation: needs review
    ),
    questions=(
        Question(
            code=PRAPARE_HOUSING_STATUS,
            text=Text(
                "What is your housing situation today?",
                "¿Cuál es su situación de vivienda hoy?",  # translation: needs review
            ),
            options=(HAVE_HOUSING, NO_HOUSING, CHOOSE_NOT_TO_ANSWER),
            domains=("homelessness",),
            # SDOHCC IG example: LA30190-5 filed under homelessness.
            positive_answers={NO_HOUSING.code: ("homelessness",)},
        ),
        Question(
            code=PRAPARE_HOUSING_WORRY,
            text=Text(
                "Are you worried about losing your housing?",
                "¿Le preocupa perder su vivienda?",  # translation: needs review
            ),
            options=(YES, NO, CHOOSE_NOT_TO_ANSWER),
            domains=("housing-instability",),
            positive_answers={YES.code: ("housing-instability",)},
        ),
        Question(
            code=PRAPARE_EMPLOYMENT,
            text=Text(
                "What is your current work situation?",
                "¿Cuál es su situación de trabajo actual?",  # translation: needs review
            ),
            options=(
                UNEMPLOYED,
                AnswerOption(
                    "LA30138-4",
                    Text("Part-time or temporary work", "Trabajo de medio tiempo o temporal"),
                ),  # translation: needs review
                AnswerOption(
                    "LA30136-8", Text("Full-time work", "Trabajo de tiempo completo")
                ),  # translation: needs review
                AnswerOption(
                    "LA30137-6",
                    Text(
                        "Otherwise unemployed but not seeking work (ex: student, retired, "
                        "disabled, unpaid primary care giver)",
                        "Sin empleo pero sin buscar trabajo (por ejemplo: estudiante, "
                        "jubilado/a, con discapacidad, cuidador/a principal "
                        "sin pago)",  # translation: needs review
                    ),
                ),
                CHOOSE_NOT_TO_ANSWER,
            ),
            domains=("employment-status",),
            # SDOHCC IG example: Unemployed -> employment-status condition (73438004, Z56.0).
            positive_answers={UNEMPLOYED.code: ("employment-status",)},
        ),
        Question(
            code=PRAPARE_UNMET_NEEDS,
            text=Text(
                "In the past year, have you or any family members you live with been unable to "
                "get any of the following when it was really needed?",
                "En el último año, ¿usted o algún familiar que vive con usted no pudo conseguir "
                "alguna de las siguientes cosas cuando de verdad "
                "las necesitaba?",  # translation: needs review
            ),
            options=(
                UNMET_FOOD,
                UNMET_CLOTHING,
                UNMET_UTILITIES,
                AnswerOption(
                    "LA30127-7", Text("Child care", "Cuidado de niños")
                ),  # translation: needs review
                AnswerOption(
                    "LA30128-5",
                    Text(
                        "Medicine or any health care (medical, dental, mental health, vision)",
                        "Medicinas o cualquier atención de salud (médica, dental, salud mental, "
                        "vista)",  # translation: needs review
                    ),
                ),
                AnswerOption("LA30129-3", Text("Phone", "Teléfono")),  # translation: needs review
                AnswerOption("LA46-8", Text("Other", "Otro")),  # translation: needs review
                # Not in PRAPARE's answer list, where no box ticked means none; a form needs a
                # way to say so that differs from "not asked yet".
                NONE_OF_THE_ABOVE,
                CHOOSE_NOT_TO_ANSWER,
            ),
            domains=("food-insecurity", "material-hardship", "utility-insecurity"),
            # Clothing -> material-hardship is the SDOHCC IG's example. Child care, medicine,
            # phone and other are recorded but not yet mapped to a domain: no confirmed mapping.
            positive_answers={
                UNMET_FOOD.code: ("food-insecurity",),
                UNMET_CLOTHING.code: ("material-hardship",),
                UNMET_UTILITIES.code: ("utility-insecurity",),
            },
            repeats=True,
        ),
        Question(
            code=PRAPARE_TRANSPORTATION,
            text=Text(
                "Has lack of transportation kept you from medical appointments, meetings, work, "
                "or from getting things needed for daily living?",
                "¿La falta de transporte le ha impedido ir a citas médicas, reuniones o al "
                "trabajo, o conseguir cosas que necesita para la "
                "vida diaria?",  # translation: needs review
            ),
            options=(TRANSPORT_MEDICAL, TRANSPORT_NON_MEDICAL, NO, UNABLE_TO_RESPOND),
            domains=("transportation-insecurity",),
            positive_answers={
                TRANSPORT_MEDICAL.code: ("transportation-insecurity",),
                TRANSPORT_NON_MEDICAL.code: ("transportation-insecurity",),
            },
            repeats=True,
        ),
        Question(
            code=PRAPARE_AFRAID_OF_PARTNER,
            text=Text(
                "Within the last year, have you been afraid of your partner or ex-partner?",
                "En el último año, ¿ha tenido miedo de su pareja "
                "o expareja?",  # translation: needs review
            ),
            options=(YES, NO, CHOOSE_NOT_TO_ANSWER),
            domains=("intimate-partner-violence",),
            positive_answers={YES.code: ("intimate-partner-violence",)},
        ),
    ),
)


# Headings the form groups questions under, by the first domain a question screens for: plain
# words the family may read over the clinician's shoulder ("Safety", not the SDOH category).
SECTIONS: dict[str, Text] = {
    "housing-instability": Text(
        "Living situation", "Situación de vivienda"
    ),  # translation: needs review
    "homelessness": Text("Living situation", "Situación de vivienda"),  # translation: needs review
    "inadequate-housing": Text(
        "Housing conditions", "Condiciones de la vivienda"
    ),  # translation: needs review
    "food-insecurity": Text("Food", "Alimentos"),  # translation: needs review
    "transportation-insecurity": Text("Transportation", "Transporte"),  # translation: needs review
    "utility-insecurity": Text("Utilities", "Servicios públicos"),  # translation: needs review
    "intimate-partner-violence": Text("Safety", "Seguridad"),  # translation: needs review
    "employment-status": Text("Work", "Trabajo"),  # translation: needs review
    "material-hardship": Text("Basic needs", "Necesidades básicas"),  # translation: needs review
}


def section_of(question: Question) -> Text | None:
    return SECTIONS.get(question.domains[0]) if question.domains else None


# Answers that decline rather than answer: never a question's "negative" answer.
REFUSALS = frozenset({CHOOSE_NOT_TO_ANSWER.code, DONT_KNOW_REFUSED.code, UNABLE_TO_RESPOND.code})
# On a select-all question, answers that cannot go with any other ("none of the above").
EXCLUSIVE_ANSWERS = REFUSALS | {NONE_OF_THE_ABOVE.code}

DEFAULT_INSTRUMENT = "ahc-hrsn"

INSTRUMENTS: dict[str, Instrument] = {
    instrument.key: instrument for instrument in (AHC_HRSN, HUNGER_VITAL_SIGN, PRAPARE)
}


def instrument_by_key(key: str) -> Instrument:
    """The instrument with this key; a clear error for an unknown one."""
    try:
        return INSTRUMENTS[key]
    except KeyError:
        known = ", ".join(INSTRUMENTS)
        raise ValueError(f"Unknown screening instrument {key!r}; known: {known}.") from None
